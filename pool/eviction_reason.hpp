#pragma once
// The one vocabulary of eviction reasons, used in logs and metrics alike (the README lists it, and
// the metrics' label sets are made from kAllEvictionReasons).

#include <array>
#include <string_view>

namespace pgvigil::pool {

enum class EvictionReason {
  server_closed,          // the server or the path closed the socket (FIN, RST)
  server_error,           // the server said FATAL (terminated backend, shutdown) and closed
  keepalive_timeout,      // kernel keep-alive probes went unanswered
  user_timeout,           // data stayed unacknowledged for TCP_USER_TIMEOUT
  ping_timeout,           // the application ping got no answer in time
  ping_failed,            // the ping was answered with an error or an unhealthy value
  statement_timeout,      // a statement of pgvigil's own (a client's settings, the reset query)
                          // got no answer in time
  checkout_check_failed,  // the check before handing the connection out failed
  max_lifetime,           // planned: the connection reached its lifetime
  idle_timeout,           // planned: idle above min_idle for too long
  dirty_return,           // returned mid-transaction or mid-protocol: state unknown
  query_timeout,          // a client's query ran past pool.query_timeout and the server did not
                          // answer its cancel
  server_down,            // the server as a whole was found down: no other path to it answered
                          // (pool/server_health.hpp)
  role_changed,           // the server is no longer what the pool wants (a standby promoted, a
                          // primary demoted): closed once its client has finished
  replication_lag,        // a standby's replay fell behind pool.max_replication_lag
  paused,                 // planned: the database was paused (POST /pause); closed once idle
  rebalanced,             // planned: its place went to another shard of the database (pool.shards)
  reload,                 // planned: configuration changed under it
  shutdown,               // planned: pgvigil is stopping
};

inline constexpr std::array kAllEvictionReasons = {
    EvictionReason::server_closed,     EvictionReason::server_error,
    EvictionReason::keepalive_timeout, EvictionReason::user_timeout,
    EvictionReason::ping_timeout,      EvictionReason::ping_failed,
    EvictionReason::statement_timeout,
    EvictionReason::checkout_check_failed, EvictionReason::max_lifetime,
    EvictionReason::idle_timeout,      EvictionReason::dirty_return,
    EvictionReason::query_timeout,     EvictionReason::server_down,
    EvictionReason::role_changed,      EvictionReason::replication_lag,
    EvictionReason::paused, EvictionReason::rebalanced,
    EvictionReason::reload,            EvictionReason::shutdown,
};

std::string_view to_string(EvictionReason reason);

// True when the connection died (found by a probe); false for planned closes, which have no
// detection latency to report.
bool is_death(EvictionReason reason);

}  // namespace pgvigil::pool
