#include "proxy/auth/scram_verifier.hpp"

#include <algorithm>
#include <charconv>

#include "proxy/auth/base64.hpp"

namespace pgvigil::proxy::auth {
namespace {

using VerifierResult = ParseResult<ScramVerifier>;

constexpr std::string_view kScramPrefix = "SCRAM-SHA-256$";

bool decode_digest(std::string_view text, Sha256Digest& digest) {
  const std::optional<Bytes> bytes = base64_decode(text);
  if (!bytes || bytes->size() != digest.size()) return false;
  std::copy(bytes->begin(), bytes->end(), digest.begin());
  return true;
}

}  // namespace

bool is_scram_secret(std::string_view secret) { return secret.starts_with(kScramPrefix); }

ParseResult<ScramVerifier> parse_scram_verifier(std::string_view text) {
  if (!text.starts_with(kScramPrefix))
    return VerifierResult::fail("SCRAM verifier must start with SCRAM-SHA-256$");
  text.remove_prefix(kScramPrefix.size());
  const std::size_t dollar = text.find('$');
  if (dollar == std::string_view::npos)
    return VerifierResult::fail("SCRAM verifier lacks the $ before the keys");
  const std::string_view salt_part = text.substr(0, dollar);
  const std::string_view key_part = text.substr(dollar + 1);
  const std::size_t salt_colon = salt_part.find(':');
  const std::size_t key_colon = key_part.find(':');
  if (salt_colon == std::string_view::npos || key_colon == std::string_view::npos) {
    return VerifierResult::fail(
        "SCRAM verifier must be SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>");
  }

  ScramVerifier verifier;
  const std::string_view iterations = salt_part.substr(0, salt_colon);
  const auto [end, error] = std::from_chars(
      iterations.data(), iterations.data() + iterations.size(), verifier.iterations);
  if (error != std::errc() || end != iterations.data() + iterations.size() ||
      verifier.iterations < 1) {
    return VerifierResult::fail("SCRAM verifier has an invalid iteration count");
  }
  std::optional<Bytes> salt = base64_decode(salt_part.substr(salt_colon + 1));
  if (!salt || salt->empty()) return VerifierResult::fail("SCRAM verifier has an invalid salt");
  verifier.salt = std::move(*salt);
  if (!decode_digest(key_part.substr(0, key_colon), verifier.stored_key) ||
      !decode_digest(key_part.substr(key_colon + 1), verifier.server_key)) {
    return VerifierResult::fail("SCRAM verifier keys must be 32 bytes in base64");
  }
  return VerifierResult::ok(std::move(verifier));
}

std::string format_scram_verifier(const ScramVerifier& verifier) {
  return std::string(kScramPrefix) + std::to_string(verifier.iterations) + ":" +
         base64_encode(verifier.salt) + "$" + base64_encode(verifier.stored_key) + ":" +
         base64_encode(verifier.server_key);
}

ScramVerifier derive_scram_verifier(std::string_view password, std::span<const std::uint8_t> salt,
                                    int iterations) {
  const Sha256Digest salted_password = pbkdf2_sha256(password, salt, iterations);
  const Sha256Digest client_key = hmac_sha256(salted_password, as_bytes("Client Key"));
  ScramVerifier verifier;
  verifier.iterations = iterations;
  verifier.salt.assign(salt.begin(), salt.end());
  verifier.stored_key = sha256(client_key);
  verifier.server_key = hmac_sha256(salted_password, as_bytes("Server Key"));
  return verifier;
}

ScramVerifier derive_scram_verifier(std::string_view password) {
  return derive_scram_verifier(password, random_bytes(kDefaultScramSaltSize));
}

const NameSalts& process_name_salts() {
  static const NameSalts salts{random_bytes(32), kDefaultScramIterations};
  return salts;
}

Bytes name_salt(const NameSalts& salts, std::string_view user) {
  const Sha256Digest digest = hmac_sha256(salts.key, as_bytes(user));
  return Bytes(digest.begin(), digest.begin() + kDefaultScramSaltSize);
}

}  // namespace pgvigil::proxy::auth
