#pragma once
// Helpers to spell protocol bytes in tests.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace pgvigil::proxy::wire::test {

inline std::string be32(std::uint32_t value) {
  return {static_cast<char>(value >> 24), static_cast<char>(value >> 16),
          static_cast<char>(value >> 8), static_cast<char>(value)};
}

// One protocol message: its type byte, its length (itself included) and its body.
inline std::string message(char type, std::string_view body) {
  return std::string(1, type) + be32(static_cast<std::uint32_t>(body.size() + 4)) +
         std::string(body);
}
// A simple Query.
inline std::string query(std::string_view sql) { return message('Q', std::string(sql) + '\0'); }
// A Parse of `sql` as statement `name` ("" for the unnamed one), no parameter types.
inline std::string parse(std::string_view name, std::string_view sql) {
  return message('P', std::string(name) + '\0' + std::string(sql) + '\0' + std::string("\0\0", 2));
}
// Sync, and an Execute of the unnamed portal with no row limit.
inline const std::string kSync = message('S', "");
inline const std::string kExecute = message('E', std::string("\0\0\0\0\0", 5));

inline std::span<const char> as_span(std::string_view bytes) {
  return {bytes.data(), bytes.size()};
}

inline std::string to_string(std::span<const char> bytes) { return {bytes.data(), bytes.size()}; }

}  // namespace pgvigil::proxy::wire::test
