#include "proxy/relay/settings_read_back.hpp"

#include <charconv>

namespace pgvigil::proxy::relay {

const std::string kSessionSettingsQuery =
    "SELECT coalesce(string_agg(octet_length(name) || ':' || name || octet_length(value) || ':' "
    "|| value, ''), '') FROM (SELECT lower(name) AS name, pg_catalog.current_setting(name) AS "
    "value FROM pg_catalog.pg_settings WHERE source = 'session') AS session_settings";

namespace {

// <bytes>:<text> at the front of `answer`, which moves past it.
std::optional<std::string_view> counted_text(std::string_view& answer) {
  std::size_t size = 0;
  const auto [end, error] = std::from_chars(answer.data(), answer.data() + answer.size(), size);
  if (error != std::errc() || end == answer.data() + answer.size() || *end != ':') {
    return std::nullopt;
  }
  answer.remove_prefix(static_cast<std::size_t>(end - answer.data()) + 1);
  if (size > answer.size()) return std::nullopt;
  const auto text = answer.substr(0, size);
  answer.remove_prefix(size);
  return text;
}

}  // namespace

std::optional<SettingMap> parse_session_settings(std::string_view answer) {
  SettingMap settings;
  while (!answer.empty()) {
    const auto name = counted_text(answer);
    if (!name || name->empty()) return std::nullopt;
    const auto value = counted_text(answer);
    if (!value) return std::nullopt;
    settings.insert_or_assign(std::string(*name), std::string(*value));
  }
  return settings;
}

std::optional<ReadBack> merge_read_back(const SettingMap& current, const SettingMap& startup,
                                        const SettingMap& read) {
  if (read.contains("role") || read.contains("session_authorization")) return std::nullopt;
  ReadBack merged;
  for (const auto& [name, value] : current) {
    if (reported_and_client_settable(name)) merged.settings.emplace(name, value);
  }
  for (const auto& [name, value] : read) {
    if (!reported_and_client_settable(name)) merged.settings.emplace(name, value);
  }
  for (const auto& [name, value] : startup) {
    if (reported_and_client_settable(name) || merged.settings.contains(name)) continue;
    merged.settings.emplace(name, value);
    merged.connection_carries_them = false;
  }
  return merged;
}

}  // namespace pgvigil::proxy::relay
