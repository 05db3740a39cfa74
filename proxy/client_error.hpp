#pragma once
// An error pgvigil itself reports to a client, as an ErrorResponse with a SQLSTATE, before it
// closes the connection. Messages say what happened and, in the hint, what to do.

#include <string>

namespace pgvigil::proxy {

namespace sqlstate {
inline constexpr const char* kProtocolViolation = "08P01";
inline constexpr const char* kConnectionFailure = "08006";
inline constexpr const char* kInvalidPassword = "28P01";
inline constexpr const char* kInvalidAuthorization = "28000";
inline constexpr const char* kInvalidCatalogName = "3D000";  // unknown database
inline constexpr const char* kTooManyConnections = "53300";
inline constexpr const char* kAdminShutdown = "57P01";
inline constexpr const char* kIdleInTransactionTimeout = "25P03";
inline constexpr const char* kIdleSessionTimeout = "57P05";
inline constexpr const char* kFeatureNotSupported = "0A000";
inline constexpr const char* kInternalError = "XX000";
}  // namespace sqlstate

struct ClientError {
  std::string sqlstate;
  std::string message;
  std::string detail;
  std::string hint;
  // A refusal the client may retry in the same session (no server connection came): in
  // transaction pooling it gets ErrorResponse and ReadyForQuery, not a FATAL.
  bool recoverable = false;
};

// The ErrorResponse bytes, severity FATAL: pgvigil closes the connection after sending it.
std::string fatal_error_bytes(const ClientError& error);

}  // namespace pgvigil::proxy
