#include "pool/connect_failure.hpp"

namespace pgvigil::pool {
namespace {

bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

}  // namespace

std::string_view to_string(ConnectFailureCause cause) {
  switch (cause) {
    case ConnectFailureCause::name_resolution: return "name_resolution";
    case ConnectFailureCause::refused: return "refused";
    case ConnectFailureCause::timeout: return "timeout";
    case ConnectFailureCause::network: return "network";
    case ConnectFailureCause::authentication: return "authentication";
    case ConnectFailureCause::too_many_connections: return "too_many_connections";
    case ConnectFailureCause::database_missing: return "database_missing";
    case ConnectFailureCause::server_starting: return "server_starting";
    case ConnectFailureCause::tls: return "tls";
    case ConnectFailureCause::role_mismatch: return "role_mismatch";
    case ConnectFailureCause::replication_lag: return "replication_lag";
    case ConnectFailureCause::other: return "other";
  }
  return "other";
}

bool server_unreachable(ConnectFailureCause cause) {
  return cause == ConnectFailureCause::refused || cause == ConnectFailureCause::timeout ||
         cause == ConnectFailureCause::network;
}

bool server_answered(ConnectFailureCause cause) {
  switch (cause) {
    case ConnectFailureCause::authentication:
    case ConnectFailureCause::too_many_connections:
    case ConnectFailureCause::database_missing:
    case ConnectFailureCause::server_starting:
    case ConnectFailureCause::tls:
      return true;
    default:
      return false;
  }
}

ConnectFailureCause classify_connect_failure(std::string_view message) {
  // Most specific first: server FATALs, then socket-level failures.
  if (contains(message, "password authentication failed") ||
      contains(message, "no pg_hba.conf entry") || contains(message, "authentication failed") ||
      contains(message, "password is required") || contains(message, "no password supplied")) {
    return ConnectFailureCause::authentication;
  }
  if (contains(message, "too many clients") || contains(message, "remaining connection slots") ||
      contains(message, "too many connections")) {
    return ConnectFailureCause::too_many_connections;
  }
  if (contains(message, "database \"") && contains(message, "does not exist")) {
    return ConnectFailureCause::database_missing;
  }
  if (contains(message, "starting up") || contains(message, "shutting down") ||
      contains(message, "in recovery mode") || contains(message, "not yet accepting")) {
    return ConnectFailureCause::server_starting;
  }
  if (contains(message, "SSL") || contains(message, "certificate") || contains(message, "TLS")) {
    return ConnectFailureCause::tls;
  }
  if (contains(message, "Connection refused")) return ConnectFailureCause::refused;
  if (contains(message, "could not translate host name") ||
      contains(message, "Name or service not known") ||
      contains(message, "Temporary failure in name resolution")) {
    return ConnectFailureCause::name_resolution;
  }
  if (contains(message, "timeout expired") || contains(message, "timed out")) {
    return ConnectFailureCause::timeout;
  }
  if (contains(message, "could not connect") || contains(message, "No route to host") ||
      contains(message, "Network is unreachable") || contains(message, "server closed the connection") ||
      contains(message, "Connection reset")) {
    return ConnectFailureCause::network;
  }
  return ConnectFailureCause::other;
}

}  // namespace pgvigil::pool
