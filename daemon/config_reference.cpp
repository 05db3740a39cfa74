// The configuration reference: the key table (config_keys.cpp) rendered as the markdown that
// docs/config-reference.md and the README hold.
#include <string>

#include "daemon/config_keys.hpp"

namespace pgvigil::daemon {
namespace {

// Markdown table cells may not contain a bare pipe.
std::string escape_cell(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '|') out += '\\';
    out += c;
  }
  return out;
}

std::string type_cell(const ConfigKey& key) {
  if (key.type != KeyType::enumeration) return std::string(type_name(key.type));
  std::string out = "one of";
  for (std::size_t i = 0; i < key.choices.size(); ++i) {
    // An empty choice ("inherit") is shown as YAML writes it.
    const std::string choice = key.choices[i].empty() ? "\"\"" : std::string(key.choices[i]);
    out += (i == 0 ? " `" : ", `") + choice + "`";
  }
  return out;
}

std::string default_cell(std::string_view text) {
  if (text.starts_with("(")) return std::string(text);  // prose, not a value
  return "`" + escape_cell(text) + "`";
}

}  // namespace

std::string_view type_name(KeyType type) {
  switch (type) {
    case KeyType::integer:
      return "integer";
    case KeyType::number:
      return "number";
    case KeyType::duration:
      return "duration";
    case KeyType::whole_seconds:
      return "duration (whole seconds)";
    case KeyType::string:
      return "string";
    case KeyType::enumeration:
      return "enum";
    case KeyType::port:
      return "port";
    case KeyType::listen:
      return "host:port";
    case KeyType::host_list:
      return "list of host:port";
    case KeyType::map:
      return "map";
    case KeyType::boolean:
      return "boolean";
  }
  return "?";
}

std::string render_config_reference() {
  std::string out =
      "| Key | Type | Default | Reloadable | Description |\n"
      "|---|---|---|---|---|\n";
  for (const ConfigKey& key : config_keys()) {
    out += "| `" + std::string(key.path) + "` | " + type_cell(key) + " | " +
           default_cell(key.default_text) + " | " + (key.reloadable ? "yes" : "no") + " | " +
           escape_cell(key.description) + " |\n";
  }
  out +=
      "\n"
      "Durations are an integer with a unit: `ms`, `s`, `m` or `h` (`500ms`, `10s`, `30m`, "
      "`2h`), or `0`; a number without a unit is an error. The top-level `pool`, `keepalive` "
      "and `ping` sections are the defaults of every database; a database overrides any of "
      "their keys in its own `pool`, `keepalive` or `ping` map. `<name>` stands for the "
      "database entry's name. `listen`, `auth` and the per-database `pool_mode`, "
      "`reset_query` and `auth_method` configure the client-facing proxy. Unknown keys are "
      "errors.\n";
  return out;
}

}  // namespace pgvigil::daemon
