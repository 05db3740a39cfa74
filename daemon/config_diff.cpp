#include "daemon/config_diff.hpp"

#include <yaml-cpp/yaml.h>

#include <stdexcept>
#include <string_view>

#include "daemon/config_keys.hpp"

namespace pgvigil::daemon {
namespace {

// The key's effective value in a config. Every top-level key is recorded by the loader, so a
// missing one means the table marks a key restart-only that no top-level parser reads: a bug
// that every test reloading a config finds.
const std::string& effective_value(const Config& config, std::string_view path) {
  const auto found = config.effective_values.find(path);
  if (found == config.effective_values.end()) {
    throw std::logic_error("no effective value recorded for restart-only key " + std::string(path));
  }
  return found->second;
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
    if (key.reloadable || key.type == KeyType::map) continue;
    const auto& before = effective_value(current, key.path);
    const auto& after = effective_value(next, key.path);
    if (before == after) continue;
    const auto [line, column] = position_of(next.source_path, key.path);
    return ConfigError(next.source_path, line, column, std::string(key.path),
                       "changed from \"" + before + "\" to \"" + after +
                           "\", which needs a restart; reload refused");
  }
  // A new admin certificate reloads; HTTP turned into HTTPS (or back) is another listener.
  if ((current.admin.tls == nullptr) != (next.admin.tls == nullptr)) {
    const auto [line, column] = position_of(next.source_path, "admin.tls.cert_file");
    return ConfigError(next.source_path, line, column, "admin.tls.cert_file",
                       next.admin.tls ? "HTTPS turned on, which needs a restart; reload refused"
                                      : "HTTPS turned off, which needs a restart; reload refused");
  }
  return std::nullopt;
}

std::vector<std::string> database_changes(const pool::PoolConfig& current,
                                          const proxy::RouteSettings& current_route,
                                          const pool::PoolConfig& next,
                                          const proxy::RouteSettings& next_route) {
  std::vector<std::string> changes;
  if (current.server != next.server) changes.emplace_back("server");
  if (current.keepalive != next.keepalive) changes.emplace_back("keepalive");
  if (current.ping != next.ping) changes.emplace_back("ping");
  if (current.pool != next.pool) changes.emplace_back("pool");
  if (current_route != next_route) changes.emplace_back("proxy");
  return changes;
}

}  // namespace pgvigil::daemon
