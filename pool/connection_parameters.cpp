#include "pool/connection_parameters.hpp"

namespace pgvigil::pool {

ConnectionParameters connection_parameters(const PoolConfig& config, const ServerHost& server,
                                           const std::string& resolved_address) {
  const auto& endpoint = config.server;
  ConnectionParameters params = {
      {"host", server.host},
      {"port", std::to_string(server.port)},
      {"dbname", endpoint.dbname},
      {"user", endpoint.user},
      {"application_name", endpoint.application_name},
      // GSS encryption is not offered by pgvigil; asking for it costs a round trip per connect.
      {"gssencmode", "disable"},
  };
  if (!resolved_address.empty()) params.emplace_back("hostaddr", resolved_address);
  if (!endpoint.password.empty()) params.emplace_back("password", endpoint.password);
  if (!server.is_unix_socket()) {
    const auto& keepalive = config.keepalive;
    params.emplace_back("keepalives", "1");
    params.emplace_back("keepalives_idle", std::to_string(keepalive.idle.count()));
    params.emplace_back("keepalives_interval", std::to_string(keepalive.interval.count()));
    params.emplace_back("keepalives_count", std::to_string(keepalive.count));
    params.emplace_back("tcp_user_timeout", std::to_string(keepalive.user_timeout.count()));
  }
  for (const auto& [key, value] : endpoint.tls) params.emplace_back(key, value);
  return params;
}

}  // namespace pgvigil::pool
