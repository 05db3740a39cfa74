#include "proxy/login/proof_login.hpp"

#include "proxy/login/wire_link.hpp"

namespace pgvigil::proxy::login {

std::unique_ptr<pool::ServerLink> ProofLogin::make_link() const {
  return std::make_unique<WireLink>(proof_);
}

}  // namespace pgvigil::proxy::login
