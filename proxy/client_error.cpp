#include "proxy/client_error.hpp"

#include "proxy/wire/backend_messages.hpp"

namespace pgvigil::proxy {

std::string fatal_error_bytes(const ClientError& error) {
  std::string bytes;
  wire::append_error_response(bytes, {wire::Severity::fatal, error.sqlstate, error.message,
                                      error.detail, error.hint});
  return bytes;
}

}  // namespace pgvigil::proxy
