#pragma once
// Helpers shared by the config tests: walking a YAML document along a key table path.

#include <yaml-cpp/yaml.h>

#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/config_keys.hpp"

namespace pgvigil::daemon::testing_util {

// "databases.<name>.pool" -> {"databases", database, "pool"}.
inline std::vector<std::string> path_segments(std::string_view path, const std::string& database) {
  std::vector<std::string> segments;
  std::stringstream in{std::string(path)};
  for (std::string segment; std::getline(in, segment, '.');) {
    segments.push_back(segment == kDatabaseName ? database : segment);
  }
  return segments;
}

// The node at a path, or nullopt. Read-only: never uses the inserting operator[].
inline std::optional<YAML::Node> node_at(const YAML::Node& root,
                                         const std::vector<std::string>& segments) {
  YAML::Node current;
  current.reset(root);
  for (const std::string& segment : segments) {
    if (!current.IsMap()) return std::nullopt;
    std::optional<YAML::Node> next;
    for (auto it = current.begin(); it != current.end(); ++it) {
      if (it->first.Scalar() == segment) next = it->second;
    }
    if (!next) return std::nullopt;
    current.reset(*next);  // operator= would overwrite the node `current` refers to
  }
  return current;
}

}  // namespace pgvigil::daemon::testing_util
