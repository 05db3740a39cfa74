#include "pool/pool_settings.hpp"

namespace pgvigil::pool {

std::string ServerEndpoint::describe() const {
  std::string text = is_unix_socket() ? host + "/.s.PGSQL." + std::to_string(port)
                                      : host + ":" + std::to_string(port);
  return text + "/" + dbname + " as " + user;
}

}  // namespace pgvigil::pool
