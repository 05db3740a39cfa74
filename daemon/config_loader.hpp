#pragma once
// Reads config.yaml into Config, validating every key; the only way a Config is made.

#include <functional>
#include <optional>
#include <string>

#include "daemon/config.hpp"
#include "daemon/config_error.hpp"

namespace pgvigil::daemon {

// Looks up an environment variable; nullopt when it is not set.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;

// Reads and validates the file; passwords come from password_file (relative paths are relative
// to the file's directory) or the process environment. Throws ConfigError.
Config load_config(const std::string& path);

// Validates YAML text. `source_name` is used in messages, as Config::source_path, and as the
// base of relative password_file paths. Throws ConfigError; never puts a password in a message.
Config parse_config(const std::string& yaml_text, const std::string& source_name,
                    const EnvLookup& env);

}  // namespace pgvigil::daemon
