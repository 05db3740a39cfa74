#include "proxy/auth/crypto.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <stdexcept>

namespace pgvigil::proxy::auth {
namespace {

void check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("OpenSSL ") + what + " failed");
}

}  // namespace

std::span<const std::uint8_t> as_bytes(std::string_view text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

std::string md5_hex(std::span<const std::uint8_t> data) {
  std::array<unsigned char, 16> digest{};
  unsigned int size = 0;
  check(EVP_Digest(data.data(), data.size(), digest.data(), &size, EVP_md5(), nullptr) == 1 &&
            size == digest.size(),
        "EVP_Digest(MD5)");
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(32);
  for (const unsigned char byte : digest) {
    hex.push_back(kHex[byte >> 4]);
    hex.push_back(kHex[byte & 0xf]);
  }
  return hex;
}

Sha256Digest sha256(std::span<const std::uint8_t> data) {
  Sha256Digest digest{};
  unsigned int size = 0;
  check(EVP_Digest(data.data(), data.size(), digest.data(), &size, EVP_sha256(), nullptr) == 1 &&
            size == digest.size(),
        "EVP_Digest(SHA-256)");
  return digest;
}

Sha256Digest hmac_sha256(std::span<const std::uint8_t> key, std::span<const std::uint8_t> data) {
  Sha256Digest mac{};
  std::size_t size = 0;
  check(EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, key.data(), key.size(), data.data(),
                  data.size(), mac.data(), mac.size(), &size) != nullptr &&
            size == mac.size(),
        "EVP_Q_mac(HMAC-SHA-256)");
  return mac;
}

Sha256Digest pbkdf2_sha256(std::string_view password, std::span<const std::uint8_t> salt,
                           int iterations) {
  Sha256Digest key{};
  check(PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()), salt.data(),
                          static_cast<int>(salt.size()), iterations, EVP_sha256(),
                          static_cast<int>(key.size()), key.data()) == 1,
        "PKCS5_PBKDF2_HMAC");
  return key;
}

Bytes random_bytes(std::size_t count) {
  Bytes bytes(count);
  check(RAND_bytes(bytes.data(), static_cast<int>(count)) == 1, "RAND_bytes");
  return bytes;
}

bool constant_time_equal(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b) {
  // Lengths are public (fixed by the algorithm), so comparing them first leaks nothing.
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace pgvigil::proxy::auth
