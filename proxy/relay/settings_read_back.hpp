#pragma once
// Settings a client changed where the relay cannot follow them message by message: a SET inside
// a transaction block or beside other statements in one Query, SET SESSION CHARACTERISTICS,
// set_config(..., false). Rather than pin the client, the relay asks the server, once the
// transaction is over, which settings the session itself set (pg_settings' source 'session':
// savepoints, rollbacks and SET LOCAL are all settled by then), and makes them the client's.
// What the client asked for at startup was applied the same way, so the answer holds it too.
//
// pg_settings leaves custom settings (myapp.key) out, so a SET of one where the relay cannot
// follow it still pins (session_state.hpp). Pure.

#include <optional>
#include <string>
#include <string_view>

#include "proxy/client_settings.hpp"

namespace pgvigil::proxy::relay {

// The query: one text value, each setting as <bytes>:<name><bytes>:<value>, so that no value
// (a search_path holds commas, quotes, '=') can be misread.
extern const std::string kSessionSettingsQuery;

// The answer read back; nullopt when it is not in that form.
std::optional<SettingMap> parse_session_settings(std::string_view answer);

// The client's settings once the session is read back (`read`):
//   - the settings the server reports (DateStyle, TimeZone, ...) stay as they are: its
//     ParameterStatus has kept them up to date;
//   - every other setting is what was read;
//   - one the client asked for at startup that is no longer there (RESET) is asked for again,
//     as a direct connection would fall back to it; the connection then does not carry it.
// nullopt when the session changed its role (no one pinned it for that: it must be now).
struct ReadBack {
  SettingMap settings;
  bool connection_carries_them = true;
};
std::optional<ReadBack> merge_read_back(const SettingMap& current, const SettingMap& startup,
                                        const SettingMap& read);

}  // namespace pgvigil::proxy::relay
