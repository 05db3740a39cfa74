#include "daemon/config_diff.hpp"

#include <yaml-cpp/yaml.h>

#include <string_view>
#include <tuple>

#include "daemon/config_keys.hpp"

namespace pgvigil::daemon {
namespace {

// The value a restart-only key has in a config, as text; nullopt for a key this file does not
// know (a new restart-only key must be added here to be guarded).
std::optional<std::string> restart_only_value(const Config& config, std::string_view path) {
  if (path == "workers") return std::to_string(config.workers);
  if (path == "log.format") return config.log.format;
  if (path == "admin.listen") return config.admin.host + ":" + std::to_string(config.admin.port);
  if (path == "listen.address") {
    return config.proxy.listen.host + ":" + std::to_string(config.proxy.listen.port);
  }
  if (path == "listen.unix_socket_dir") return config.proxy.listen.unix_socket_dir;
  if (path == "systemd.ready_when") {
    return config.systemd.ready_when_pools_healthy ? "pools_healthy" : "listening";
  }
  return std::nullopt;
}

// 1-based line and column of the key's value in the file, or of the file's start when the key
// is left out (its default applies) or the file cannot be read again.
std::pair<int, int> position_of(const std::string& file, std::string_view path) {
  try {
    YAML::Node node = YAML::LoadFile(file);
    std::size_t start = 0;
    while (node && node.IsMap()) {
      const auto dot = path.find('.', start);
      const std::string segment(path.substr(start, dot - start));
      YAML::Node child = node[segment];
      if (!child) break;
      if (dot == std::string_view::npos) return {child.Mark().line + 1, child.Mark().column + 1};
      node.reset(child);
      start = dot + 1;
    }
  } catch (const YAML::Exception&) {
  }
  return {1, 1};
}

}  // namespace

std::optional<ConfigError> restart_only_change(const Config& current, const Config& next) {
  for (const ConfigKey& key : config_keys()) {
    if (key.reloadable) continue;
    const auto before = restart_only_value(current, key.path);
    const auto after = restart_only_value(next, key.path);
    if (!before || !after || *before == *after) continue;
    const auto [line, column] = position_of(next.source_path, key.path);
    return ConfigError(next.source_path, line, column, std::string(key.path),
                       "changed from \"" + *before + "\" to \"" + *after +
                           "\", which needs a restart; reload refused");
  }
  return std::nullopt;
}

std::vector<std::string> database_changes(const pool::PoolConfig& current,
                                          const proxy::RouteSettings& current_route,
                                          const pool::PoolConfig& next,
                                          const proxy::RouteSettings& next_route) {
  const auto endpoint = [](const pool::ServerEndpoint& s) {
    return std::tie(s.host, s.port, s.dbname, s.user, s.password, s.tls, s.application_name);
  };
  const auto sizing = [](const pool::PoolSettings& p) {
    return std::tie(p.min_idle, p.max_size, p.shards, p.connect_timeout, p.checkout_timeout,
                    p.max_lifetime, p.lifetime_jitter, p.idle_timeout, p.validate_after_idle,
                    p.reconnect.initial_delay, p.reconnect.max_delay,
                    p.reconnect.max_delay_while_clients_wait);
  };
  const auto route = [](const proxy::RouteSettings& r) {
    return std::tie(r.pool_mode, r.reset_query, r.auth_method);
  };
  std::vector<std::string> changes;
  if (endpoint(current.server) != endpoint(next.server)) changes.emplace_back("server");
  if (current.keepalive != next.keepalive) changes.emplace_back("keepalive");
  if (current.ping != next.ping) changes.emplace_back("ping");
  if (sizing(current.pool) != sizing(next.pool)) changes.emplace_back("pool");
  if (route(current_route) != route(next_route)) changes.emplace_back("proxy");
  return changes;
}

}  // namespace pgvigil::daemon
