#pragma once
// The session settings a client asked for at startup (application_name, DateStyle, TimeZone,
// search_path, extra_float_digits, options=-c ...), and the statements that make a server
// connection carry them. Pure.

#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "proxy/wire/parse_result.hpp"
#include "proxy/wire/startup_message.hpp"

namespace pgvigil::proxy {

// Lower-case setting name -> value, as the client wants it. Looked up by string_view too
// (find_setting), so that a lookup allocates nothing.
using SettingMap = std::map<std::string, std::string, std::less<>>;

// Everything in the startup packet beyond user and database, plus `options` (-c name=value and
// --name=value, backslash escapes as PostgreSQL reads them). Protocol extensions (_pq_.*) are
// not settings. Fails with a message for an option pgvigil cannot honour or a bad name.
ParseResult<SettingMap> settings_from_startup(const wire::StartupMessage& startup);

// A value kept as the client wrote it in SQL (SET name TO <value>): marked with this first
// character, and applied as written rather than quoted as one string.
inline constexpr char kSqlValueMark = '\x01';

// "SELECT set_config('name', 'value', false); SET name TO value as written; RESET name; ..."
// turning a connection that carries `applied` into one that carries `wanted`; empty when they
// agree.
std::string settings_statements(const SettingMap& wanted, const SettingMap& applied);

// 'value' with its quotes doubled (E'...' when it holds a backslash): an SQL string literal
// that reads the same whatever standard_conforming_strings says.
std::string quote_literal(std::string_view value);

// The settings PostgreSQL reports with ParameterStatus (GUC_REPORT), in its spelling.
inline constexpr const char* kReportedParameters[] = {"application_name",
                                                      "client_encoding",
                                                      "DateStyle",
                                                      "default_transaction_read_only",
                                                      "in_hot_standby",
                                                      "integer_datetimes",
                                                      "IntervalStyle",
                                                      "is_superuser",
                                                      "server_encoding",
                                                      "server_version",
                                                      "session_authorization",
                                                      "standard_conforming_strings",
                                                      "TimeZone"};

// A setting the server reports with ParameterStatus that a client may change for its session
// (application_name, DateStyle, TimeZone, ...), as opposed to a fact about the server or the
// login (server_version, in_hot_standby, is_superuser, session_authorization, ...).
bool follows_client(std::string_view reported_name);

// `name` (any case) is one of kReportedParameters that a client may change: its SET is followed
// through the server's ParameterStatus.
bool reported_and_client_settable(std::string_view name);

// The same setting name, ASCII case ignored, as PostgreSQL compares them.
bool setting_names_equal(std::string_view a, std::string_view b);

// The key of a setting in a SettingMap.
std::string lower_setting_name(std::string_view name);

// The entry of `name` in any case ("DateStyle" finds "datestyle"), or settings.end(). Asked for
// every reported parameter at every client's login: names up to PostgreSQL's 63 bytes are
// lowered on the stack, not in a new string.
SettingMap::const_iterator find_setting(const SettingMap& settings, std::string_view name);

// A GUC name PostgreSQL would accept in SET: letters, digits, '_', '.', not starting with a digit.
bool is_valid_setting_name(std::string_view name);

}  // namespace pgvigil::proxy
