#pragma once
// SCRAM-SHA-256 verifiers in PostgreSQL's stored form:
//   SCRAM-SHA-256$<iterations>:<salt base64>$<StoredKey base64>:<ServerKey base64>

#include <string>
#include <string_view>

#include "proxy/auth/crypto.hpp"
#include "proxy/wire/parse_result.hpp"

namespace pgvigil::proxy::auth {

inline constexpr int kDefaultScramIterations = 4096;  // PostgreSQL's scram_iterations default
inline constexpr std::size_t kDefaultScramSaltSize = 16;

struct ScramVerifier {
  int iterations = 0;
  Bytes salt;
  Sha256Digest stored_key{};
  Sha256Digest server_key{};
};

// True when the secret looks like a SCRAM verifier (prefix only); parse to validate.
bool is_scram_secret(std::string_view secret);

ParseResult<ScramVerifier> parse_scram_verifier(std::string_view text);
std::string format_scram_verifier(const ScramVerifier& verifier);

// Derives a verifier from a plain password. The password is used as bytes: PostgreSQL first
// applies SASLprep, which leaves ASCII unchanged but may map some non-ASCII passwords; such
// passwords should be stored as verifiers made by PostgreSQL instead.
ScramVerifier derive_scram_verifier(std::string_view password, std::span<const std::uint8_t> salt,
                                    int iterations = kDefaultScramIterations);

// Same with a fresh random salt.
ScramVerifier derive_scram_verifier(std::string_view password);

// The salt a user name gets when no stored verifier brings one: HMAC-SHA-256 of the name under a
// key drawn when the process starts, cut to kDefaultScramSaltSize. Unknown users and users with
// a plain password both get it, so the salt a client is shown is stable per name and says
// nothing about whether the user exists.
Bytes name_salt(std::string_view user);

}  // namespace pgvigil::proxy::auth
