#pragma once
// SQL that leaves state in the server session beyond its transaction, which in transaction
// pooling would reach the next client of the server connection: a role, a custom setting,
// LISTEN, a session advisory lock, a temporary table, a WITH HOLD cursor, an SQL-level PREPARE.
// A client that sends such SQL is pinned to its server connection for the rest of its session
// (the connection is reset when it leaves), instead of being refused. A setting the server knows
// (search_path, statement_timeout) pins nothing: the relay follows it (settings_read_back.hpp).
//
// The scan is cheap and errs towards pinning: words are read case-insensitively and without
// regard to quotes, so a word inside a string literal can pin a client needlessly, never the
// other way round. What it cannot read (a DO block, LOAD) pins too. Pure.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace pgvigil::proxy::relay {

// Why a client is pinned; a closed set (a metric label).
enum class PinCause : std::uint8_t {
  setting,             // a custom setting (myapp.key) SET where the relay cannot follow it, or
                       // settings the relay could not read back
  role,                // SET ROLE, SET SESSION AUTHORIZATION
  listen,              // LISTEN
  advisory_lock,       // a session-level advisory lock
  temporary_table,     // CREATE TEMP ..., SELECT INTO TEMP
  cursor,              // DECLARE ... WITH HOLD
  sql_prepare,         // PREPARE name AS ...
  prepared_statement,  // a protocol-level named statement with pool.max_prepared_statements 0
  unclassified,        // SQL the scan cannot see into (DO, LOAD, a Query too large to show)
};
inline constexpr PinCause kPinCauses[] = {PinCause::setting,         PinCause::role,
                                          PinCause::listen,          PinCause::advisory_lock,
                                          PinCause::temporary_table, PinCause::cursor,
                                          PinCause::sql_prepare,     PinCause::prepared_statement,
                                          PinCause::unclassified};
std::string_view to_string(PinCause cause);
// Every cause's name, in kPinCauses' order: the closed set of the metric's label.
std::span<const std::string_view> pin_cause_names();

// What one Query's text (or one Parse's) leaves in the session, read in one pass:
//   pin               the first reason to pin its client; nullopt when it leaves nothing
//                     beyond its transaction;
//   resets_settings   it may put settings back to the server's defaults (RESET, DISCARD): no
//                     state of its own, but the connection's settings are no longer the ones
//                     recorded (not looked for past a reason to pin);
//   changes_settings  it may change, for the session, a setting the server knows but does not
//                     report (SET, SET SESSION CHARACTERISTICS, set_config): the relay reads
//                     them back once the transaction is over (not looked for past a reason to
//                     pin).
struct SessionState {
  std::optional<PinCause> pin;
  bool resets_settings = false;
  bool changes_settings = false;
};
SessionState scan_session_state(std::string_view sql);

// `sql` is exactly one `SET [SESSION] name {TO | =} value` of a setting the server does not
// report (search_path, statement_timeout, a custom myapp.key): the name (lower case) and the
// value as written, to be applied again the same way wherever the client goes next.
struct PlainSet {
  std::string name;
  std::string value;
};
std::optional<PlainSet> plain_set(std::string_view sql);

// What a lone RESET (or DISCARD ALL) puts back: one setting (lower case), or "" for all of them.
std::optional<std::string> reset_target(std::string_view sql);

}  // namespace pgvigil::proxy::relay
