#pragma once
// The one exception configuration loading throws; fatal at start-up, a rejected reload later.

#include <stdexcept>
#include <string>

namespace pgvigil::daemon {

// what() is exactly "FILE:LINE:COLUMN: key.path: message" (1-based line and column), so editors
// and CI annotations can jump to the spot. Never carries a secret's value.
class ConfigError : public std::runtime_error {
 public:
  ConfigError(std::string file, int line, int column, std::string key, std::string message)
      : std::runtime_error(file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " +
                           key + ": " + message),
        file_(std::move(file)),
        line_(line),
        column_(column),
        key_(std::move(key)),
        message_(std::move(message)) {}

  const std::string& file() const { return file_; }
  int line() const { return line_; }
  int column() const { return column_; }
  const std::string& key() const { return key_; }  // e.g. databases.app.pool.min_idle
  const std::string& message() const { return message_; }

 private:
  std::string file_;
  int line_;
  int column_;
  std::string key_;
  std::string message_;
};

}  // namespace pgvigil::daemon
