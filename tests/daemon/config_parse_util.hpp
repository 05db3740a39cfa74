#pragma once
// Parsing a config text in a test: an environment of its own, the error a bad text throws, the
// smallest valid text and a scratch directory for the files a config names.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>

#include "daemon/config_loader.hpp"

namespace pgvigil::daemon {

inline const std::string minimal_config = "databases:\n  app:\n    user: app\n";

// A scratch directory for password files, removed after the test.
class TempDir {
 public:
  TempDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "pgvigil-config-XXXXXX").string();
    path_ = ::mkdtemp(pattern.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path write(const std::string& name, const std::string& text) const {
    std::ofstream(path_ / name) << text;
    return path_ / name;
  }

 private:
  std::filesystem::path path_;
};

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
