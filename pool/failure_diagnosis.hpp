#pragma once
// Why a server connection died, from what the kernel, the socket and libpq say about it. Pure:
// the caller gathers the evidence (ServerConnection::diagnose_failure), so every verdict can be
// tested without breaking a network.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "pool/eviction_reason.hpp"
#include "probes/keepalive_settings.hpp"
#include "probes/tcp_info.hpp"

namespace pgvigil::pool {

using Clock = std::chrono::steady_clock;

// Why a connection is dead, and when it last showed it was alive.
struct Death {
  EvictionReason reason;
  std::string detail;
  Clock::time_point last_sign_of_life;
};

struct FailureEvidence {
  std::string context;  // what pgvigil was doing: "relaying", "reading from idle connection"
  bool data_in_flight = false;  // waiting for an answer: a kernel timeout is TCP_USER_TIMEOUT
  // TCP_INFO, read before anything else: it survives the kernel's teardown and says which timer
  // ended the connection. nullopt for a Unix socket or a socket already gone.
  std::optional<probes::TcpSnapshot> tcp;
  // SO_ERROR (0: none). The relay's own recv has usually consumed it (ETIMEDOUT) already, so
  // alone it cannot tell a timeout from an ordinary close.
  int pending_error = 0;
  std::string libpq_message;                // PQerrorMessage, one line
  std::optional<std::string> server_fatal;  // a FATAL the server sent before closing
  probes::KeepaliveSettings keepalive;
  Clock::time_point now;
  Clock::time_point created_at;
  Clock::time_point last_alive;  // the last time pgvigil heard from the server
};

Death diagnose(const FailureEvidence& evidence);

// Whether an error or notice the server sent unasked says it is closing the connection: a FATAL
// or PANIC (pg_terminate_backend, a smart or fast shutdown), or the WARNING a backend sends as it
// is killed by an immediate shutdown (57P01) or for a crash of another server process (57P02):
// PostgreSQL 14 and later send those as warnings, then close. Seen on an idle connection before
// its FIN, it keeps the connection from being lent (the FIN may come a moment later).
bool announces_close(std::string_view severity, std::string_view sqlstate);

}  // namespace pgvigil::pool
