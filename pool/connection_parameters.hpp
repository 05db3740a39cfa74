#pragma once
// The libpq connection parameters for one server connection, built from the pool's config.

#include <string>
#include <utility>
#include <vector>

#include "pool/pool_settings.hpp"

namespace pgvigil::pool {

using ConnectionParameters = std::vector<std::pair<std::string, std::string>>;

// server: the one of config.server.hosts this attempt goes to (the pool picks it, so libpq gets
// one host). resolved_address: the IP address to connect to (libpq's hostaddr), so that libpq
// never resolves names on the event loop; empty for a Unix socket. The keep-alive options go to
// libpq, which sets them before connect(), so they cover the handshake too.
ConnectionParameters connection_parameters(const PoolConfig& config, const ServerHost& server,
                                           const std::string& resolved_address);

}  // namespace pgvigil::pool
