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

// What a user name is shown when no stored verifier brings its own salt and iteration count:
// unknown users, and users with a plain password. The salt is HMAC-SHA-256 of the name under
// `key`, cut to kDefaultScramSaltSize, so it is stable per name and says nothing about whether
// the user exists. The users file derives the key from its secrets (UsersFile::name_salts), so
// salts stay the same across restarts and between instances that share the file, as stored
// verifiers' salts do, and takes the iteration count its stored verifiers use most.
struct NameSalts {
  Bytes key;
  int iterations = kDefaultScramIterations;
};
// A key drawn at random when the process starts, for when there is no users file.
const NameSalts& process_name_salts();
Bytes name_salt(const NameSalts& salts, std::string_view user);

}  // namespace pgvigil::proxy::auth
