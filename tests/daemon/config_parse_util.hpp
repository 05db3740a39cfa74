#pragma once
// Parsing a config text in a test: an environment of its own, and the error a bad text throws.

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>

#include "daemon/config_loader.hpp"

namespace pgvigil::daemon {

inline EnvLookup env_of(std::map<std::string, std::string> variables) {
  return [variables = std::move(variables)](const std::string& name) -> std::optional<std::string> {
    const auto it = variables.find(name);
    if (it == variables.end()) return std::nullopt;
    return it->second;
  };
}

inline Config parse(const std::string& yaml, const std::string& source = "test.yaml",
                    std::map<std::string, std::string> env = {}) {
  return parse_config(yaml, source, env_of(std::move(env)));
}

// The error parse_config throws, or a test failure.
inline ConfigError error_of(const std::string& yaml, const std::string& source = "test.yaml",
                            std::map<std::string, std::string> env = {}) {
  try {
    parse(yaml, source, std::move(env));
  } catch (const ConfigError& e) {
    return e;
  }
  ADD_FAILURE() << "parsed without error:\n" << yaml;
  return ConfigError("", 0, 0, "", "");
}

}  // namespace pgvigil::daemon
