#pragma once
// The one table of configuration keys. The parser asks it which keys exist and what type each
// has, the unknown-key check and "did you mean" come from it, and so does docs/config-reference.md.

#include <string>
#include <string_view>
#include <vector>

namespace pgvigil::daemon {

enum class KeyType {
  integer,        // whole number
  number,         // decimal number
  duration,       // "500ms", "10s", "30m", "2h" or 0 (see duration.hpp)
  whole_seconds,  // a duration that must be whole seconds (kernel socket options count seconds)
  string,
  enumeration,  // a string from ConfigKey::choices
  port,         // 1..65535
  listen,       // host:port, [v6]:port
  host_list,    // a list of host:port, [v6]:port, host or /socket/dir
  map,          // a map whose own keys are described elsewhere (database entries, overrides)
  boolean,      // true or false
};

// Stands for a database's name in the paths of per-database keys: databases.<name>.host.
inline constexpr std::string_view kDatabaseName = "<name>";

struct ConfigKey {
  std::string_view path;  // dotted, e.g. "pool.reconnect.max_delay"
  KeyType type;
  std::string_view default_text;  // as written in YAML; "(...)" when it is not a literal value
  bool reloadable;                // whether a reload applies it without a restart
  std::string_view description;   // one line
  std::vector<std::string_view> choices = {};  // enumeration only
};

// Every key, in the order of the documentation. Sections (log, pool.reconnect, ...) are implied
// by the paths of their keys and have no row of their own.
const std::vector<ConfigKey>& config_keys();

// The row for an exact path (with kDatabaseName for per-database keys), or nullptr.
const ConfigKey* find_config_key(std::string_view path);

// The type as the documentation names it ("duration", "integer", ...).
std::string_view type_name(KeyType type);

// A markdown table (key, type, default, reloadable, description) followed by notes on syntax;
// docs/config-reference.md holds exactly this text and the README embeds it.
std::string render_config_reference();

}  // namespace pgvigil::daemon
