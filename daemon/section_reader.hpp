#pragma once
// Reads one YAML map of config.yaml against the key table (config_keys.hpp): rejects unknown and
// duplicate keys, converts each value by the type its row gives, and throws ConfigError at the
// value's position. Range and cross-key checks stay with the section parsers in config_loader.cpp.

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "daemon/config_keys.hpp"

namespace pgvigil::daemon::detail {

// What every key holds after parsing (from the file, or its default), in one canonical text per
// type ("10s" and "10000ms" read the same), by the key's table path. The reload's restart-only
// check compares these for every key the table marks restart-only, so a new such key is guarded
// without a list to extend.
using EffectiveValues = std::map<std::string, std::string, std::less<>>;

struct MapEntry {
  std::string key;
  YAML::Node key_node;
  YAML::Node value;
};

// Throws ConfigError "source:line:column: key: message" from a yaml-cpp mark (0-based).
[[noreturn]] void throw_config_error(const std::string& source, const YAML::Mark& mark,
                                     const std::string& key, const std::string& message);

class SectionReader {
 public:
  // `map` is the section's node, or nullopt when the file leaves the section out; a null node is
  // an empty section. `where` is reported for keys that are missing. `table_prefix` names the
  // section in the table ("pool.reconnect", "databases.<name>"), `display_prefix` in messages
  // ("databases.app.pool.reconnect"); both are empty for the document's root.
  // `values`, when given, receives the effective value of every key read through this reader
  // and its nested sections (see EffectiveValues); it must outlive them.
  SectionReader(const std::optional<YAML::Node>& map, YAML::Mark where, std::string table_prefix,
                std::string display_prefix, std::string source, EffectiveValues* values = nullptr);

  bool has(std::string_view key) const;

  // Each read leaves `value` untouched when the key is absent and says whether it was present;
  // either way `value` is what the key holds now, and that is recorded as its effective value.
  bool read(std::string_view key, int& value);                        // integer
  bool read(std::string_view key, double& value);                     // number
  bool read(std::string_view key, std::chrono::milliseconds& value);  // duration
  bool read(std::string_view key, std::chrono::seconds& value);       // whole_seconds
  bool read(std::string_view key, std::string& value);                // string, enumeration
  bool read(std::string_view key, std::uint16_t& value);              // port
  bool read(std::string_view key, bool& value);                       // boolean
  // listen. With allow_empty, "" is accepted and sets host to "" (the listener is off), leaving
  // port as it was.
  bool read_listen(std::string_view key, std::string& host, std::uint16_t& port,
                   bool allow_empty = false);

  // host_list: replaces `hosts` when present (entries without a port get default_port).
  bool read_hosts(std::string_view key, std::uint16_t default_port,
                  std::vector<std::pair<std::string, std::uint16_t>>& hosts);

  // A nested section. `table_prefix` replaces the derived one for per-database overrides,
  // whose keys are documented under the top-level section ("pool", not "databases.<name>.pool").
  SectionReader section(std::string_view key, std::optional<std::string> table_prefix = {});
  // The entries of a map key whose own keys are names (databases), in file order.
  std::vector<MapEntry> entries(std::string_view key);

  std::string path(std::string_view key) const;  // display path of a key of this section
  const std::string& source() const { return source_; }

  // Throws at the key's value if present, else at this section.
  [[noreturn]] void fail(std::string_view key, const std::string& message) const;

  // Checks that every key the table lists for this section was asked for: a parser that forgot
  // one is a programming error (std::logic_error), caught by every test that parses a file.
  void finish() const;

 private:
  const MapEntry* find(std::string_view key) const;
  std::string table_path(std::string_view key) const;
  // Records the request and checks the table gives the key this type (a logic error if not).
  const ConfigKey& expect(std::string_view key, KeyType type);
  // The key's value as a scalar string, or fail naming what was expected.
  std::optional<std::string> scalar(std::string_view key, KeyType expected);
  // Records the key's effective value, in canonical text, when this reader records values.
  void note(std::string_view key, std::string canonical);

  std::vector<MapEntry> entries_;
  YAML::Mark where_;
  std::string table_prefix_;
  std::string display_prefix_;
  std::string source_;
  EffectiveValues* values_;
  std::set<std::string, std::less<>> children_;   // keys the table allows here
  std::set<std::string, std::less<>> requested_;  // keys a parser asked for
};

}  // namespace pgvigil::daemon::detail
