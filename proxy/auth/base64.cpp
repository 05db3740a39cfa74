#include "proxy/auth/base64.hpp"

#include <openssl/evp.h>

namespace pgvigil::proxy::auth {
namespace {

bool is_base64_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/';
}

}  // namespace

std::string base64_encode(std::span<const std::uint8_t> data) {
  std::string text(4 * ((data.size() + 2) / 3) + 1, '\0');  // EVP_EncodeBlock adds a NUL
  const int size = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(text.data()), data.data(),
                                   static_cast<int>(data.size()));
  text.resize(static_cast<std::size_t>(size));
  return text;
}

std::optional<Bytes> base64_decode(std::string_view text) {
  // EVP_DecodeBlock trims whitespace and counts padding as zero bytes, so the input is checked
  // here first and the padding subtracted afterwards.
  if (text.size() % 4 != 0) return std::nullopt;
  std::size_t padding = 0;
  if (!text.empty() && text.back() == '=') ++padding;
  if (text.size() >= 2 && text[text.size() - 2] == '=') ++padding;
  for (std::size_t i = 0; i < text.size() - padding; ++i) {
    if (!is_base64_char(text[i])) return std::nullopt;
  }
  if (text.empty()) return Bytes{};
  Bytes data(text.size() / 4 * 3);
  const int size = EVP_DecodeBlock(data.data(), reinterpret_cast<const unsigned char*>(text.data()),
                                   static_cast<int>(text.size()));
  if (size < 0 || static_cast<std::size_t>(size) != data.size()) return std::nullopt;
  data.resize(data.size() - padding);
  return data;
}

}  // namespace pgvigil::proxy::auth
