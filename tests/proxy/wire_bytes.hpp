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

inline std::span<const char> as_span(std::string_view bytes) {
  return {bytes.data(), bytes.size()};
}

inline std::string to_string(std::span<const char> bytes) { return {bytes.data(), bytes.size()}; }

}  // namespace pgvigil::proxy::wire::test
