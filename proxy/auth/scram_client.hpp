#pragma once
// Client side of SCRAM-SHA-256 (RFC 5802, RFC 7677) from keys instead of a password: how
// pgvigil logs in to the server as a client's own role in a per-user pool. A client's SCRAM
// login reveals its ClientKey to whoever holds the verifier (ScramServer::client_key), and the
// proof for any later exchange needs only that key: ClientProof = ClientKey XOR
// HMAC(H(ClientKey), AuthMessage). The verifier's ServerKey checks the server's signature, as
// the password would. The keys only fit a server whose verifier is the one pgvigil checked the
// client against (the server's own, with auth.query).
//
// No channel binding ("n,,"): the server accepts it, and the TLS link to it is pgvigil's own.
//
// Flow: client_first() -> SASLInitialResponse("SCRAM-SHA-256", it);
//       SASLContinue data -> client_final() -> SASLResponse(it);
//       SASLFinal data -> verify_server_final().

#include <optional>
#include <string>
#include <string_view>

#include "proxy/auth/crypto.hpp"

namespace pgvigil::proxy::auth {

struct ScramKeys {
  Sha256Digest client_key{};
  Sha256Digest server_key{};
  friend bool operator==(const ScramKeys&, const ScramKeys&) = default;
};

class ScramClient {
 public:
  // nonce empty: 18 random bytes in base64, as libpq makes it. Tests inject one.
  explicit ScramClient(ScramKeys keys, std::string nonce = {});

  std::string client_first() const;  // client-first-message, with the gs2 header
  // The client-final-message answering server-first; nullopt with `error` when server-first is
  // malformed or does not extend our nonce.
  std::optional<std::string> client_final(std::string_view server_first, std::string& error);
  // false with `error` when the server's signature is missing or wrong: it does not hold the
  // verifier, so it is not the server it claims to be.
  bool verify_server_final(std::string_view server_final, std::string& error) const;

 private:
  ScramKeys keys_;
  std::string nonce_;
  std::string auth_message_;
};

}  // namespace pgvigil::proxy::auth
