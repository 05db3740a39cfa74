#include "pool/eviction_reason.hpp"

namespace pgvigil::pool {

std::string_view to_string(EvictionReason reason) {
  switch (reason) {
    case EvictionReason::server_closed: return "server_closed";
    case EvictionReason::server_error: return "server_error";
    case EvictionReason::keepalive_timeout: return "keepalive_timeout";
    case EvictionReason::user_timeout: return "user_timeout";
    case EvictionReason::ping_timeout: return "ping_timeout";
    case EvictionReason::ping_failed: return "ping_failed";
    case EvictionReason::statement_timeout: return "statement_timeout";
    case EvictionReason::checkout_check_failed: return "checkout_check_failed";
    case EvictionReason::max_lifetime: return "max_lifetime";
    case EvictionReason::idle_timeout: return "idle_timeout";
    case EvictionReason::dirty_return: return "dirty_return";
    case EvictionReason::query_timeout: return "query_timeout";
    case EvictionReason::server_down: return "server_down";
    case EvictionReason::role_changed: return "role_changed";
    case EvictionReason::replication_lag: return "replication_lag";
    case EvictionReason::paused: return "paused";
    case EvictionReason::rebalanced: return "rebalanced";
    case EvictionReason::reload: return "reload";
    case EvictionReason::shutdown: return "shutdown";
  }
  return "unknown";
}

bool is_death(EvictionReason reason) {
  switch (reason) {
    case EvictionReason::max_lifetime:
    case EvictionReason::idle_timeout:
    case EvictionReason::dirty_return:
    case EvictionReason::role_changed:
    case EvictionReason::replication_lag:
    case EvictionReason::paused:
    case EvictionReason::rebalanced:
    case EvictionReason::reload:
    case EvictionReason::shutdown:
      return false;
    default:
      return true;
  }
}

}  // namespace pgvigil::pool
