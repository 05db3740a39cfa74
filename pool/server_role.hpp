#pragma once
// What a server is (primary or standby, writable or not) and whether that is what a pool wants
// (TargetSessionAttrs, pool_settings.hpp). PostgreSQL 14 and later report in_hot_standby and
// default_transaction_read_only as ParameterStatus at start-up, and in_hot_standby again when a
// standby is promoted, so a connection knows its server's role without a query; older servers
// are asked (kRoleQuery).

#include <optional>
#include <string>
#include <string_view>

#include "pool/pool_settings.hpp"

namespace pgvigil::pool {

enum class ServerRole { unknown, primary, standby };

struct RoleReport {
  ServerRole role = ServerRole::unknown;
  bool read_only = false;  // in hot standby, or default_transaction_read_only on
  friend bool operator==(const RoleReport&, const RoleReport&) = default;
};

std::string_view to_string(ServerRole role);

// in_hot_standby's value: "on" a standby, "off" a primary; nullopt for anything else (a server
// before PostgreSQL 14 sends none).
std::optional<ServerRole> role_from_hot_standby(std::string_view in_hot_standby);
// From the ParameterStatus values ("on"/"off"); nullopt when the server did not send
// in_hot_standby (before PostgreSQL 14), so it must be asked with kRoleQuery.
std::optional<RoleReport> role_from_parameters(std::string_view in_hot_standby,
                                               std::string_view default_transaction_read_only);
// One value, "t,on" style: pg_is_in_recovery() and transaction_read_only.
inline constexpr char kRoleQuery[] =
    "SELECT pg_is_in_recovery()::text || ',' || current_setting('transaction_read_only')";
// kRoleQuery's answer; nullopt when it is not one.
std::optional<RoleReport> role_from_query_value(std::string_view value);

// A standby's replay lag in seconds: 0 while it has replayed all it received (an idle primary
// sends nothing, so the last replayed transaction may be old without any lag), else the age of
// the last transaction it replayed; 0 on a primary.
inline constexpr char kReplicationLagQuery[] =
    "SELECT CASE WHEN pg_last_wal_receive_lsn() IS NOT NULL AND "
    "pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn() THEN 0 "
    "ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0) END";
// kReplicationLagQuery's answer in seconds; nullopt when it is not a number.
std::optional<double> lag_from_query_value(std::string_view value);

// Whether a server in this role serves the pool. standby_pass: the first pass over the hosts
// of prefer-standby, which takes only standbys (the second takes any).
bool role_matches(TargetSessionAttrs target, const RoleReport& report, bool standby_pass);

}  // namespace pgvigil::pool
