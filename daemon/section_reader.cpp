#include "daemon/section_reader.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>

#include "daemon/address_text.hpp"
#include "daemon/config_error.hpp"
#include "daemon/duration.hpp"

namespace pgvigil::daemon::detail {
namespace {

std::string join(const std::string& prefix, std::string_view key) {
  return prefix.empty() ? std::string(key) : prefix + "." + std::string(key);
}

std::string_view expected_text(KeyType type) {
  switch (type) {
    case KeyType::integer:
      return "an integer";
    case KeyType::number:
      return "a number";
    case KeyType::duration:
      return "a duration such as 500ms, 10s, 30m or 0";
    case KeyType::whole_seconds:
      return "a duration in whole seconds such as 5s";
    case KeyType::string:
      return "a string";
    case KeyType::enumeration:
      return "one of the listed values";
    case KeyType::port:
      return "a port number from 1 to 65535";
    case KeyType::listen:
      return "host:port such as 127.0.0.1:9930 or [::1]:9930";
    case KeyType::host_list:
      return "a list such as [\"db1:5432\", \"db2:5432\"]";
    case KeyType::map:
      return "a map";
    case KeyType::boolean:
      return "true or false";
  }
  return "a value";
}

std::string_view node_kind(const YAML::Node& node) {
  if (node.IsMap()) return "a map";
  if (node.IsSequence()) return "a list";
  if (node.IsNull()) return "nothing";
  return "a scalar";
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1] ? 1 : 0)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string unknown_key_message(std::string_view key,
                                const std::set<std::string, std::less<>>& known) {
  std::string best;
  std::size_t best_distance = std::max<std::size_t>(2, key.size() / 3) + 1;
  for (const std::string& candidate : known) {
    // A prefix ("password" for "password_file") is as good a guess as a typo.
    const std::size_t distance = candidate.starts_with(key) ? 1 : edit_distance(key, candidate);
    if (distance < best_distance) {
      best = candidate;
      best_distance = distance;
    }
  }
  if (!best.empty()) return "unknown key (did you mean " + best + "?)";
  std::string list;
  for (const std::string& candidate : known) list += (list.empty() ? "" : ", ") + candidate;
  return "unknown key (expected one of: " + list + ")";
}

}  // namespace

void throw_config_error(const std::string& source, const YAML::Mark& mark, const std::string& key,
                        const std::string& message) {
  // yaml-cpp counts from 0 and uses -1 for "no position" (an empty document).
  const int line = mark.line < 0 ? 1 : mark.line + 1;
  const int column = mark.column < 0 ? 1 : mark.column + 1;
  throw ConfigError(source, line, column, key, message);
}

SectionReader::SectionReader(const std::optional<YAML::Node>& map, YAML::Mark where,
                             std::string table_prefix, std::string display_prefix,
                             std::string source, EffectiveValues* values)
    : where_(where),
      table_prefix_(std::move(table_prefix)),
      display_prefix_(std::move(display_prefix)),
      source_(std::move(source)),
      values_(values) {
  const std::string scope = table_prefix_.empty() ? "" : table_prefix_ + ".";
  for (const ConfigKey& key : config_keys()) {
    if (!key.path.starts_with(scope) || key.path.size() == scope.size()) continue;
    const std::string_view rest = key.path.substr(scope.size());
    children_.emplace(rest.substr(0, rest.find('.')));
  }

  if (!map || map->IsNull()) {
    if (map) where_ = map->Mark();
    return;
  }
  const std::string self = display_prefix_.empty() ? "(document)" : display_prefix_;
  if (!map->IsMap()) {
    throw_config_error(source_, map->Mark(), self,
                       "expected a map of keys, got " + std::string(node_kind(*map)));
  }
  where_ = map->Mark();
  for (auto it = map->begin(); it != map->end(); ++it) {
    if (!it->first.IsScalar()) {
      throw_config_error(source_, it->first.Mark(), self, "keys must be plain names");
    }
    MapEntry entry{it->first.Scalar(), it->first, it->second};
    if (!children_.contains(entry.key)) {
      throw_config_error(source_, entry.key_node.Mark(), path(entry.key),
                         unknown_key_message(entry.key, children_));
    }
    if (const MapEntry* first = find(entry.key)) {
      throw_config_error(
          source_, entry.key_node.Mark(), path(entry.key),
          "duplicate key (first at line " + std::to_string(first->key_node.Mark().line + 1) + ")");
    }
    entries_.push_back(std::move(entry));
  }
}

const MapEntry* SectionReader::find(std::string_view key) const {
  const auto it = std::find_if(entries_.begin(), entries_.end(),
                               [&](const MapEntry& e) { return e.key == key; });
  return it == entries_.end() ? nullptr : &*it;
}

bool SectionReader::has(std::string_view key) const { return find(key) != nullptr; }

std::string SectionReader::path(std::string_view key) const { return join(display_prefix_, key); }

std::string SectionReader::table_path(std::string_view key) const {
  return join(table_prefix_, key);
}

void SectionReader::fail(std::string_view key, const std::string& message) const {
  const MapEntry* entry = find(key);
  throw_config_error(source_, entry ? entry->value.Mark() : where_, path(key), message);
}

const ConfigKey& SectionReader::expect(std::string_view key, KeyType type) {
  const ConfigKey* row = find_config_key(table_path(key));
  if (row == nullptr || row->type != type) {
    throw std::logic_error("config key table has no " + std::string(type_name(type)) + " key " +
                           table_path(key));
  }
  requested_.emplace(key);
  return *row;
}

std::optional<std::string> SectionReader::scalar(std::string_view key, KeyType expected) {
  expect(key, expected);
  const MapEntry* entry = find(key);
  if (entry == nullptr) return std::nullopt;
  if (entry->value.IsNull()) {
    // A missing value has no position of its own (yaml-cpp gives the next token's), so
    // point at the key.
    throw_config_error(source_, entry->key_node.Mark(), path(key),
                       "has no value, expected " + std::string(expected_text(expected)) +
                           (expected == KeyType::string ? " (write \"\" for an empty one)" : ""));
  }
  if (!entry->value.IsScalar()) {
    fail(key, "expected " + std::string(expected_text(expected)) + ", got " +
                  std::string(node_kind(entry->value)));
  }
  return entry->value.Scalar();
}

void SectionReader::note(std::string_view key, std::string canonical) {
  if (values_ != nullptr) (*values_)[table_path(key)] = std::move(canonical);
}

bool SectionReader::read(std::string_view key, int& value) {
  const auto text = scalar(key, KeyType::integer);
  if (text) {
    const auto [end, error] = std::from_chars(text->data(), text->data() + text->size(), value);
    if (error == std::errc::result_out_of_range) fail(key, "integer out of range");
    if (error != std::errc{} || end != text->data() + text->size()) {
      fail(key, "expected an integer, got '" + *text + "'");
    }
  }
  note(key, std::to_string(value));
  return text.has_value();
}

bool SectionReader::read(std::string_view key, bool& value) {
  const auto text = scalar(key, KeyType::boolean);
  if (text) {
    if (*text == "true") {
      value = true;
    } else if (*text == "false") {
      value = false;
    } else {
      fail(key, "expected true or false, got '" + *text + "'");
    }
  }
  note(key, value ? "true" : "false");
  return text.has_value();
}

bool SectionReader::read(std::string_view key, double& value) {
  const auto text = scalar(key, KeyType::number);
  if (text) {
    const auto [end, error] = std::from_chars(text->data(), text->data() + text->size(), value);
    if (error != std::errc{} || end != text->data() + text->size() || !std::isfinite(value)) {
      fail(key, "expected a number, got '" + *text + "'");
    }
  }
  char shortest[32];
  const auto written = std::to_chars(shortest, shortest + sizeof shortest, value);
  note(key, std::string(shortest, written.ptr));
  return text.has_value();
}

bool SectionReader::read(std::string_view key, std::chrono::milliseconds& value) {
  const auto text = scalar(key, KeyType::duration);
  if (text) {
    try {
      value = parse_duration(*text);
    } catch (const std::invalid_argument& e) {
      fail(key, e.what());
    }
  }
  note(key, format_duration(value));
  return text.has_value();
}

bool SectionReader::read(std::string_view key, std::chrono::seconds& value) {
  const auto text = scalar(key, KeyType::whole_seconds);
  if (text) {
    std::chrono::milliseconds parsed{};
    try {
      parsed = parse_duration(*text);
    } catch (const std::invalid_argument& e) {
      fail(key, e.what());
    }
    // The kernel's keep-alive options count whole seconds; rounding silently would lie.
    if (parsed.count() % 1000 != 0) fail(key, "must be whole seconds, got " + *text);
    value = std::chrono::duration_cast<std::chrono::seconds>(parsed);
  }
  note(key, format_duration(value));
  return text.has_value();
}

bool SectionReader::read(std::string_view key, std::string& value) {
  const ConfigKey* row = find_config_key(table_path(key));
  const KeyType type = row != nullptr ? row->type : KeyType::string;
  const auto text =
      scalar(key, type == KeyType::enumeration ? KeyType::enumeration : KeyType::string);
  if (text) {
    if (type == KeyType::enumeration &&
        std::find(row->choices.begin(), row->choices.end(), *text) == row->choices.end()) {
      std::string list;
      for (std::string_view choice : row->choices)
        list += (list.empty() ? "" : ", ") + (choice.empty() ? "\"\"" : std::string(choice));
      fail(key, "unknown value '" + *text + "' (expected one of: " + list + ")");
    }
    value = *text;
  }
  note(key, value);
  return text.has_value();
}

bool SectionReader::read(std::string_view key, std::uint16_t& value) {
  const auto text = scalar(key, KeyType::port);
  if (text) {
    const auto port = parse_port(*text);
    if (!port) fail(key, "expected a port number from 1 to 65535, got '" + *text + "'");
    value = *port;
  }
  note(key, std::to_string(value));
  return text.has_value();
}

bool SectionReader::read_listen(std::string_view key, std::string& host, std::uint16_t& port,
                                bool allow_empty) {
  const auto text = scalar(key, KeyType::listen);
  if (text && allow_empty && text->empty()) {
    host.clear();
  } else if (text) {
    try {
      std::tie(host, port) = parse_listen(*text);
    } catch (const std::invalid_argument& e) {
      fail(key, "invalid address '" + *text + "': " + e.what());
    }
  }
  const bool v6 = host.find(':') != std::string::npos;
  note(key, host.empty() ? "" : (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port));
  return text.has_value();
}

bool SectionReader::read_hosts(std::string_view key, std::uint16_t default_port,
                               std::vector<std::pair<std::string, std::uint16_t>>& hosts) {
  expect(key, KeyType::host_list);
  const MapEntry* entry = find(key);
  if (entry != nullptr) {
    if (!entry->value.IsSequence()) {
      fail(key, "expected " + std::string(expected_text(KeyType::host_list)) + ", got " +
                    std::string(node_kind(entry->value)));
    }
    hosts.clear();
    for (const auto& item : entry->value) {
      const auto mark = item.Mark();
      if (!item.IsScalar()) {
        throw_config_error(source_, mark, path(key), "each entry must be a string such as db1:5432");
      }
      try {
        auto host = parse_server_host(item.Scalar(), default_port);
        if (std::find(hosts.begin(), hosts.end(), host) != hosts.end()) {
          throw std::invalid_argument("listed twice");
        }
        hosts.push_back(std::move(host));
      } catch (const std::invalid_argument& e) {
        throw_config_error(source_, mark, path(key),
                           "invalid entry '" + item.Scalar() + "': " + e.what());
      }
    }
  }
  std::string canonical;
  for (const auto& [host, port] : hosts) {
    canonical += (canonical.empty() ? "" : ",") + host + ":" + std::to_string(port);
  }
  note(key, "[" + canonical + "]");
  return entry != nullptr;
}

SectionReader SectionReader::section(std::string_view key,
                                     std::optional<std::string> table_prefix) {
  const ConfigKey* row = find_config_key(table_path(key));
  if (!children_.contains(key) || (row != nullptr && row->type != KeyType::map)) {
    throw std::logic_error("config key table has no section " + table_path(key));
  }
  requested_.emplace(key);
  const MapEntry* entry = find(key);
  std::optional<YAML::Node> node;
  if (entry != nullptr) node = entry->value;
  return SectionReader(node, entry != nullptr ? entry->key_node.Mark() : where_,
                       std::move(table_prefix).value_or(table_path(key)), path(key), source_,
                       values_);
}

std::vector<MapEntry> SectionReader::entries(std::string_view key) {
  expect(key, KeyType::map);
  const MapEntry* entry = find(key);
  if (entry == nullptr || entry->value.IsNull()) return {};
  if (!entry->value.IsMap()) {
    fail(key, "expected a map, got " + std::string(node_kind(entry->value)));
  }
  std::vector<MapEntry> result;
  for (auto it = entry->value.begin(); it != entry->value.end(); ++it) {
    if (!it->first.IsScalar() || it->first.Scalar().empty()) {
      throw_config_error(source_, it->first.Mark(), path(key), "names must be non-empty strings");
    }
    MapEntry item{it->first.Scalar(), it->first, it->second};
    for (const MapEntry& earlier : result) {
      if (earlier.key == item.key) {
        throw_config_error(source_, item.key_node.Mark(), path(key) + "." + item.key,
                           "duplicate key (first at line " +
                               std::to_string(earlier.key_node.Mark().line + 1) + ")");
      }
    }
    result.push_back(std::move(item));
  }
  return result;
}

void SectionReader::finish() const {
  for (const std::string& child : children_) {
    if (!requested_.contains(child)) {
      throw std::logic_error("config parser never reads key " + table_path(child));
    }
  }
}

}  // namespace pgvigil::daemon::detail
