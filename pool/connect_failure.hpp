#pragma once
// Why a connection attempt failed, as a closed set for metrics and back-off decisions.

#include <array>
#include <string_view>

namespace pgvigil::pool {

enum class ConnectFailureCause {
  name_resolution,       // the host name does not resolve
  refused,               // nothing listens there (ECONNREFUSED)
  timeout,               // connect_timeout elapsed
  network,               // unreachable, reset during the handshake, and other socket errors
  authentication,        // wrong password or no pg_hba.conf entry (28P01, 28000)
  too_many_connections,  // max_connections or a role limit reached (53300)
  database_missing,      // the database does not exist (3D000)
  server_starting,       // starting up, shutting down or in recovery (57P03)
  tls,                   // TLS negotiation or certificate failure
  role_mismatch,         // connected, but the server's role is not target_session_attrs
  replication_lag,       // connected to a standby whose replay lags past max_replication_lag
  other,
};

inline constexpr std::array kAllConnectFailureCauses = {
    ConnectFailureCause::name_resolution, ConnectFailureCause::refused,
    ConnectFailureCause::timeout,         ConnectFailureCause::network,
    ConnectFailureCause::authentication,  ConnectFailureCause::too_many_connections,
    ConnectFailureCause::database_missing, ConnectFailureCause::server_starting,
    ConnectFailureCause::tls,             ConnectFailureCause::role_mismatch,
    ConnectFailureCause::replication_lag, ConnectFailureCause::other};

std::string_view to_string(ConnectFailureCause cause);

// The attempt found nothing answering at the server's address: no listener, no answer in time,
// a broken path. A sign of trouble for the server's health.
bool server_unreachable(ConnectFailureCause cause);
// The server itself answered the attempt, if only to refuse it: it is alive. Not role_mismatch:
// the one that answered is another server of the list (a standby), not the one the pool uses.
bool server_answered(ConnectFailureCause cause);

// libpq reports connection failures as text only (no SQLSTATE before a connection exists), so
// the cause is read from PQerrorMessage(). Server messages are matched in English (lc_messages C).
ConnectFailureCause classify_connect_failure(std::string_view libpq_message);

}  // namespace pgvigil::pool
