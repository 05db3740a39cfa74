#pragma once
// What a client's login proved that lets pgvigil log in to the server as the client's own role
// without its password (per-user pools, when no plain password is configured): the SCRAM keys
// its exchange revealed, or the md5 hash it answered against. Empty after trust, cert, or a
// login checked against a plain password (that password is used instead).

#include <optional>
#include <string>

#include "proxy/auth/scram_client.hpp"

namespace pgvigil::proxy::auth {

struct LoginProof {
  std::optional<ScramKeys> scram;
  std::string md5_hash;  // "md5" and 32 hex digits, as the server stores it

  bool empty() const { return !scram && md5_hash.empty(); }
  friend bool operator==(const LoginProof&, const LoginProof&) = default;
};

}  // namespace pgvigil::proxy::auth
