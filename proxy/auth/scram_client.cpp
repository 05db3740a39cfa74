#include "proxy/auth/scram_client.hpp"

#include "proxy/auth/base64.hpp"

namespace pgvigil::proxy::auth {
namespace {

constexpr std::string_view kGs2Header = "n,,";
constexpr std::string_view kClientFirstBarePrefix = "n=,r=";  // the user is the startup's

// The value of `name=` among comma-separated attributes; nullopt when absent.
std::optional<std::string_view> attribute(std::string_view message, char name) {
  while (!message.empty()) {
    const auto comma = message.find(',');
    const auto part = message.substr(0, comma);
    if (part.size() >= 2 && part[0] == name && part[1] == '=') return part.substr(2);
    if (comma == std::string_view::npos) break;
    message.remove_prefix(comma + 1);
  }
  return std::nullopt;
}

}  // namespace

ScramClient::ScramClient(ScramKeys keys, std::string nonce)
    : keys_(keys), nonce_(nonce.empty() ? base64_encode(random_bytes(18)) : std::move(nonce)) {}

std::string ScramClient::client_first() const {
  return std::string(kGs2Header) + std::string(kClientFirstBarePrefix) + nonce_;
}

std::optional<std::string> ScramClient::client_final(std::string_view server_first,
                                                     std::string& error) {
  const auto nonce = attribute(server_first, 'r');
  if (!nonce || nonce->size() <= nonce_.size() || !nonce->starts_with(nonce_)) {
    error = "the server's SCRAM nonce does not extend ours";
    return std::nullopt;
  }
  if (!attribute(server_first, 's') || !attribute(server_first, 'i')) {
    error = "the server's SCRAM message has no salt or iteration count";
    return std::nullopt;
  }
  const std::string without_proof =
      "c=" + base64_encode(as_bytes(kGs2Header)) + ",r=" + std::string(*nonce);
  auth_message_ = std::string(kClientFirstBarePrefix) + nonce_ + "," + std::string(server_first) +
                  "," + without_proof;
  const Sha256Digest stored_key = sha256(keys_.client_key);
  const Sha256Digest signature = hmac_sha256(stored_key, as_bytes(auth_message_));
  Sha256Digest proof{};
  for (std::size_t i = 0; i < proof.size(); ++i) proof[i] = keys_.client_key[i] ^ signature[i];
  return without_proof + ",p=" + base64_encode(proof);
}

bool ScramClient::verify_server_final(std::string_view server_final, std::string& error) const {
  if (const auto failure = attribute(server_final, 'e')) {
    error = "the server refused the SCRAM exchange: " + std::string(*failure);
    return false;
  }
  const auto signature_text = attribute(server_final, 'v');
  const auto signature = signature_text ? base64_decode(*signature_text) : std::nullopt;
  const Sha256Digest expected = hmac_sha256(keys_.server_key, as_bytes(auth_message_));
  if (auth_message_.empty() || !signature || !constant_time_equal(*signature, expected)) {
    error = "the server's SCRAM signature is wrong";
    return false;
  }
  return true;
}

}  // namespace pgvigil::proxy::auth
