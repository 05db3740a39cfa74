#pragma once
// What a reload would change: the restart-only keys it touches (refused) and, per database, which
// parts differ (logged in the reload's summary).

#include <optional>
#include <string>
#include <vector>

#include "daemon/config.hpp"
#include "daemon/config_error.hpp"

namespace pgvigil::daemon {

// The first key the table marks as not reloadable whose value differs between the configs, as
// a ConfigError at that key's position in next's file ("file:line:col: key: message"); nullopt
// when none differs.
std::optional<ConfigError> restart_only_change(const Config& current, const Config& next);

// The parts of one database that differ: "server", "keepalive", "ping", "pool", "proxy".
std::vector<std::string> database_changes(const pool::PoolConfig& current,
                                          const proxy::RouteSettings& current_route,
                                          const pool::PoolConfig& next,
                                          const proxy::RouteSettings& next_route);

}  // namespace pgvigil::daemon
