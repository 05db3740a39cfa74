#include "pool/pool_settings.hpp"

namespace pgvigil::pool {

std::string ServerHost::describe() const {
  if (is_unix_socket()) return host + "/.s.PGSQL." + std::to_string(port);
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::string ServerEndpoint::describe() const {
  std::string text;
  for (const auto& server : hosts) text += (text.empty() ? "" : ",") + server.describe();
  return text + "/" + dbname + " as " + user;
}

}  // namespace pgvigil::pool
