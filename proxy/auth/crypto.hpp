#pragma once
// The few OpenSSL primitives authentication needs, wrapped so callers never see OpenSSL types
// or return codes. Failures of OpenSSL itself (out of memory, provider missing) throw
// std::runtime_error: they are not caused by the peer and cannot be handled per session.

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pgvigil::proxy::auth {

using Bytes = std::vector<std::uint8_t>;
using Sha256Digest = std::array<std::uint8_t, 32>;

std::span<const std::uint8_t> as_bytes(std::string_view text);

// Lower-case hex MD5 of data, 32 characters.
std::string md5_hex(std::span<const std::uint8_t> data);
Sha256Digest sha256(std::span<const std::uint8_t> data);
Sha256Digest hmac_sha256(std::span<const std::uint8_t> key, std::span<const std::uint8_t> data);
// PBKDF2-HMAC-SHA-256 with a 32-byte output: SCRAM's Hi(password, salt, iterations).
Sha256Digest pbkdf2_sha256(std::string_view password, std::span<const std::uint8_t> salt,
                           int iterations);

// Cryptographically strong random bytes (nonces, salts).
Bytes random_bytes(std::size_t count);

// Comparison whose time does not depend on where the inputs differ: proofs and hashes are
// compared with it so that timing leaks nothing about the secret.
bool constant_time_equal(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b);

}  // namespace pgvigil::proxy::auth
