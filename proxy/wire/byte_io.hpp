#pragma once
// Network-order integer reads and writes shared by the codecs. Every protocol integer is
// big-endian and signed on the wire; callers range-check after reading.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace pgvigil::proxy::wire {

// Precondition: bytes.size() >= 4.
inline std::uint32_t read_uint32(std::span<const char> bytes) {
  const auto b = [&](std::size_t i) {
    return static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i]));
  };
  return (b(0) << 24) | (b(1) << 16) | (b(2) << 8) | b(3);
}

// Precondition: bytes.size() >= 2.
inline std::uint16_t read_uint16(std::span<const char> bytes) {
  const auto b = [&](std::size_t i) {
    return static_cast<unsigned>(static_cast<unsigned char>(bytes[i]));
  };
  return static_cast<std::uint16_t>((b(0) << 8) | b(1));
}

inline void append_uint32(std::string& out, std::uint32_t value) {
  out.push_back(static_cast<char>(value >> 24));
  out.push_back(static_cast<char>(value >> 16));
  out.push_back(static_cast<char>(value >> 8));
  out.push_back(static_cast<char>(value));
}

inline void append_uint16(std::string& out, std::uint16_t value) {
  out.push_back(static_cast<char>(value >> 8));
  out.push_back(static_cast<char>(value));
}

}  // namespace pgvigil::proxy::wire
