#include "proxy/client_settings.hpp"

#include <cctype>
#include <vector>

namespace pgvigil::proxy {
namespace {

// ASCII only, as PostgreSQL folds GUC names (guc_name_compare), whatever the locale.
char lower_ascii(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

std::string lower(std::string_view text) {
  std::string result(text);
  for (auto& c : result) c = lower_ascii(c);
  return result;
}

// Splits `options` on unescaped white space; a backslash takes the next character literally.
std::vector<std::string> split_options(std::string_view options) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  for (std::size_t i = 0; i < options.size(); ++i) {
    const char c = options[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      if (in_word) words.push_back(std::move(word));
      word.clear();
      in_word = false;
      continue;
    }
    in_word = true;
    if (c == '\\' && i + 1 < options.size()) {
      word += options[++i];
    } else {
      word += c;
    }
  }
  if (in_word) words.push_back(std::move(word));
  return words;
}

}  // namespace

bool setting_names_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower_ascii(a[i]) != lower_ascii(b[i])) return false;
  }
  return true;
}

bool follows_client(std::string_view reported_name) {
  // What PostgreSQL reports that no SET of the client's changes (or that a later issue's role
  // tracking reads: in_hot_standby); session_authorization changes with SET SESSION
  // AUTHORIZATION, which must pin the client rather than follow it.
  constexpr std::string_view kServerFacts[] = {
      "server_version", "server_encoding",       "integer_datetimes", "in_hot_standby",
      "is_superuser",   "session_authorization", "scram_iterations"};
  for (const auto fact : kServerFacts) {
    if (reported_name == fact) return false;
  }
  return is_valid_setting_name(reported_name);
}

std::string lower_setting_name(std::string_view name) { return lower(name); }

SettingMap::const_iterator find_setting(const SettingMap& settings, std::string_view name) {
  constexpr std::size_t kLongestName = 63;  // NAMEDATALEN - 1
  if (name.size() > kLongestName) return settings.find(lower(name));
  char lowered[kLongestName];
  for (std::size_t i = 0; i < name.size(); ++i) lowered[i] = lower_ascii(name[i]);
  return settings.find(std::string_view(lowered, name.size()));
}

bool reported_and_client_settable(std::string_view name) {
  for (const char* reported : kReportedParameters) {
    if (setting_names_equal(name, reported)) return follows_client(reported);
  }
  return false;
}

bool is_valid_setting_name(std::string_view name) {
  if (name.empty() || std::isdigit(static_cast<unsigned char>(name.front()))) return false;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.') return false;
  }
  return true;
}

ParseResult<SettingMap> settings_from_startup(const wire::StartupMessage& startup) {
  SettingMap settings;
  auto add = [&settings](std::string_view name, std::string_view value) -> bool {
    if (!is_valid_setting_name(name)) return false;
    settings[lower(name)] = std::string(value);
    return true;
  };
  if (!startup.application_name.empty()) add("application_name", startup.application_name);
  for (const auto& parameter : startup.others) {
    if (parameter.name.starts_with("_pq_.")) continue;
    if (!add(parameter.name, parameter.value)) {
      return ParseResult<SettingMap>::fail("invalid startup parameter name \"" + parameter.name +
                                           "\"");
    }
  }
  const auto words = split_options(startup.options);
  for (std::size_t i = 0; i < words.size(); ++i) {
    std::string_view assignment;
    if (words[i] == "-c" && i + 1 < words.size()) {
      assignment = words[++i];
    } else if (words[i].starts_with("-c")) {
      assignment = std::string_view(words[i]).substr(2);
    } else if (words[i].starts_with("--")) {
      assignment = std::string_view(words[i]).substr(2);
    } else {
      return ParseResult<SettingMap>::fail("unsupported option \"" + words[i] +
                                           "\" in startup options: pgvigil accepts only " +
                                           "-c name=value and --name=value");
    }
    const auto equals = assignment.find('=');
    if (equals == std::string_view::npos) {
      return ParseResult<SettingMap>::fail("option \"" + std::string(assignment) +
                                           "\" lacks a value (-c name=value)");
    }
    std::string name(assignment.substr(0, equals));
    for (auto& c : name) c = c == '-' ? '_' : c;  // --search-path=x means search_path
    if (!add(name, assignment.substr(equals + 1))) {
      return ParseResult<SettingMap>::fail("invalid setting name \"" + name + "\" in options");
    }
  }
  return ParseResult<SettingMap>::ok(std::move(settings));
}

std::string settings_statements(const SettingMap& wanted, const SettingMap& applied) {
  std::string sql;
  // Values as the server would take them from a startup packet go through set_config, which
  // takes the string as it is: SET search_path TO 'a, b' would make "a, b" one schema's name.
  std::string set_config_calls;
  for (const auto& [name, value] : wanted) {
    auto found = applied.find(name);
    if (found != applied.end() && found->second == value) continue;
    if (!value.empty() && value.front() == kSqlValueMark) {
      sql += "SET " + name + " TO " + value.substr(1) + ";";
    } else {
      set_config_calls += (set_config_calls.empty() ? "SELECT " : ", ");
      set_config_calls +=
          "pg_catalog.set_config(" + quote_literal(name) + ", " + quote_literal(value) + ", false)";
    }
  }
  if (!set_config_calls.empty()) sql += set_config_calls + ";";
  for (const auto& [name, value] : applied) {
    if (!wanted.contains(name)) sql += "RESET " + name + ";";
  }
  return sql;
}

std::string quote_literal(std::string_view value) {
  // A backslash would be an escape where standard_conforming_strings is off: an E'' string
  // reads it the same way whatever the setting.
  const bool escaped = value.find('\\') != std::string_view::npos;
  std::string quoted = escaped ? "E'" : "'";
  for (char c : value) {
    if (c == '\'' || (escaped && c == '\\')) quoted += c;
    quoted += c;
  }
  return quoted + "'";
}

}  // namespace pgvigil::proxy
