#pragma once
// The pool::ServerLogin of a per-user pool without a password: its connections are WireLinks
// that log in with what a client's login proved.

#include "pool/server_link.hpp"
#include "proxy/auth/login_proof.hpp"

namespace pgvigil::proxy::login {

class ProofLogin final : public pool::ServerLogin {
 public:
  explicit ProofLogin(auth::LoginProof proof) : proof_(std::move(proof)) {}
  std::unique_ptr<pool::ServerLink> make_link() const override;
  const auth::LoginProof& proof() const { return proof_; }

 private:
  auth::LoginProof proof_;
};

}  // namespace pgvigil::proxy::login
