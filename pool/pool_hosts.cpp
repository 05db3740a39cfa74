// Pool: which of a database's servers a new connection goes to. Each attempt tries the hosts in
// order from the one that last matched target_session_attrs, so a failover costs one refused or
// mismatched attempt per connection until the new primary is found, and then none.
#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>

#include <algorithm>

#include "pool/pool_internal.hpp"
#include "pool/server_connection.hpp"

namespace pgvigil::pool {
namespace asio = boost::asio;
using asio::awaitable;

namespace {

// Targets that several servers of the list may serve at once: their connections are spread.
bool spreads(TargetSessionAttrs target) {
  return target == TargetSessionAttrs::standby || target == TargetSessionAttrs::prefer_standby ||
         target == TargetSessionAttrs::read_only;
}

}  // namespace

std::vector<std::size_t> Pool::host_order(const std::vector<ServerHost>& hosts,
                                          HostLoad::Reservation& reserved) const {
  const std::size_t first = preferred_host_ < hosts.size() ? preferred_host_ : 0;
  std::vector<std::size_t> order;
  for (std::size_t i = 0; i < hosts.size(); ++i) order.push_back((first + i) % hosts.size());
  if (hosts.size() < 2 || !spreads(config_->server.target_session_attrs)) return order;
  // Least connections first, counting every shard of the database and the attempts under way
  // (so that a burst of new ones spreads too); ties keep the order from the preferred host.
  std::vector<std::string> servers;
  for (const auto& host : hosts) servers.push_back(host.describe());
  return health_->host_load().least_first(servers, std::move(order), reserved);
}

awaitable<std::optional<Death>> Pool::excess_replication_lag(ServerConnection& connection,
                                                             Clock::time_point deadline) {
  const auto bound = config_->pool.max_replication_lag;
  if (bound.count() == 0 || connection.role().role != ServerRole::standby) co_return std::nullopt;
  const std::string query = kReplicationLagQuery;  // named: see ServerConnection::ask_role
  const auto answer = co_await connection.query_value(query, deadline);
  if (answer.error) {
    if (answer.error->death) co_return answer.error->death;
    co_return Death{EvictionReason::ping_failed,
                    "replication lag query answered with " + answer.error->sqlstate + ": " +
                        answer.error->message,
                    Clock::now()};
  }
  const auto lag = lag_from_query_value(answer.value.value_or(""));
  if (!lag) {
    co_return Death{EvictionReason::ping_failed,
                    "replication lag query answered \"" + answer.value.value_or("") + "\"",
                    Clock::now()};
  }
  if (*lag * 1000 <= static_cast<double>(bound.count())) co_return std::nullopt;
  co_return Death{EvictionReason::replication_lag,
                  fmt::format("standby replay lags {:.1f} s, more than pool.max_replication_lag "
                              "({} ms)",
                              *lag, bound.count()),
                  Clock::now()};
}

awaitable<std::optional<ConnectFailure>> Pool::connect_to_matching_host(
    ServerConnection& connection, Clock::duration per_host_timeout) {
  const auto& server = config_->server;
  const auto hosts = server.hosts;  // a reload may replace config_ while this runs
  const auto target = server.target_session_attrs;
  // prefer-standby goes over the list twice: standbys only, then any.
  const int passes = target == TargetSessionAttrs::prefer_standby && hosts.size() > 1 ? 2 : 1;
  HostLoad::Reservation attempt;  // held until the attempts are over
  const auto order = host_order(hosts, attempt);
  std::optional<ConnectFailure> outcome;
  std::string failures;
  std::vector<std::pair<std::string, ConnectFailureCause>> skipped;  // role or lag
  const auto record_skipped = [&] {
    for (const auto& [name, cause] : skipped) {
      metrics_->record_connect_failure(name, to_string(cause));
    }
  };
  for (int pass = 0; pass < passes; ++pass) {
    for (const std::size_t index : order) {
      const auto& host = hosts[index];
      const auto deadline = Clock::now() + per_host_timeout;
      auto failure = co_await connection.connect(host, deadline);
      // Where any role will do, no query is spent on it (an older server's stays unknown).
      if (!failure && !connection.take_reported_role() && target != TargetSessionAttrs::any) {
        failure = co_await connection.ask_role(deadline);
      }
      if (!failure && !role_matches(target, connection.role(), pass == 0 && passes == 2)) {
        failure = ConnectFailure{ConnectFailureCause::role_mismatch,
                                 "server is a " + std::string(to_string(connection.role().role)) +
                                     (connection.role().read_only ? " (read-only)" : "") +
                                     ", not " + std::string(to_string(target))};
      }
      if (!failure) {
        if (auto lag = co_await excess_replication_lag(connection, deadline)) {
          failure = ConnectFailure{lag->reason == EvictionReason::replication_lag
                                       ? ConnectFailureCause::replication_lag
                                       : ConnectFailureCause::other,
                                   lag->detail};
        }
      }
      if (!failure) {
        const auto role = to_string(connection.role().role);
        metrics_->set_server_role(host.describe(), role);
        // Where connections are spread over several servers, another one is no failover.
        if (!spreads(target) && health_->failover().moved_to(host.describe())) {
          metrics_->record_failover();
          spdlog::warn(
              "pool {}: moved to {} ({}): the server used until now does not answer "
              "as {}",
              name_, host.describe(), role, to_string(target));
        }
        preferred_host_ = index;
        count_on_server(connection, +1);
        co_return std::nullopt;
      }
      if (failure->cause == ConnectFailureCause::role_mismatch) {
        metrics_->set_server_role(host.describe(), to_string(connection.role().role));
      }
      // The host in use refused, did not answer, is shutting down or answered in another role:
      // a failover may have begun (failover_clock.hpp). A refused login or a full server is
      // no such sign.
      if (server_unreachable(failure->cause) ||
          failure->cause == ConnectFailureCause::server_starting ||
          failure->cause == ConnectFailureCause::role_mismatch) {
        health_->failover().sign_on(host.describe(), deadline - per_host_timeout);
      }
      // Counted for the host that failed (connect_to_matching_host's caller counts nothing).
      // A server passed over for its role or its lag is no failure when another one serves:
      // where connections are spread, the primary of a standby pool is passed over at every
      // connect. Those count only when no host matched.
      const bool passed_over = failure->cause == ConnectFailureCause::role_mismatch ||
                               failure->cause == ConnectFailureCause::replication_lag;
      if (passed_over) {
        skipped.emplace_back(host.describe(), failure->cause);
      } else if (!stopping_) {
        metrics_->record_connect_failure(host.describe(), to_string(failure->cause));
      }
      if (hosts.size() == 1) {
        if (passed_over && !stopping_) record_skipped();
        co_return failure;
      }
      spdlog::debug("pool {}: {} passed over: {}", name_, host.describe(), failure->message);
      failures += (failures.empty() ? "" : "; ") + host.describe() + ": " + failure->message;
      // A server that answered with the wrong role (or lagging) says more than one that did not
      // answer: the database is there, waiting for a promotion or a replay.
      if (!outcome || failure->cause == ConnectFailureCause::role_mismatch ||
          failure->cause == ConnectFailureCause::replication_lag) {
        outcome = ConnectFailure{failure->cause, {}};
      }
      if (stopping_) break;
    }
    if (stopping_) break;
  }
  connection.close();
  if (!stopping_) record_skipped();
  outcome->message = failures;
  co_return outcome;
}

awaitable<void> Pool::recheck_role(Lease connection) {
  connection->role_suspect = false;
  // When it still matches, the client asked for a read-only transaction itself (BEGIN READ
  // ONLY): nothing changed.
  // A statement of its own, not an if's condition: GCC 12 crashed on the co_await there.
  const bool matches =
      co_await confirm_role(connection, "the server refused a write as read-only (25006)");
  if (matches) make_available(connection);
}

awaitable<bool> Pool::confirm_role(Lease connection, const char* evidence) {
  const auto failure = co_await connection->ask_role(Clock::now() + config_->ping.timeout);
  if (connection->state() != ConnectionState::probing) co_return false;  // evicted meanwhile
  const auto now = Clock::now();
  if (failure) {
    // Died while asked (reset, timeout): evicted as what it died of, with its last sign of life.
    evict(connection, failure->death ? *failure->death
                                     : Death{EvictionReason::ping_failed, failure->message, now});
    co_return false;
  }
  const auto target = config_->server.target_session_attrs;
  if (role_matches(target, connection->role(), false)) {
    connection->role_suspect = false;  // asked already: no second question on its return
    co_return true;
  }
  const auto host = connection->host();
  const auto role = connection->role();
  metrics_->set_server_role(host.describe(), to_string(role.role));
  health_->failover().sign_on(host.describe(), now);
  const Death death{EvictionReason::role_changed,
                    std::string(evidence) + ": the server is now a " +
                        std::string(to_string(role.role)) + (role.read_only ? " (read-only)" : "") +
                        ", not " + std::string(to_string(target)),
                    now};
  evict(connection, death);
  drop_connections_to(host, death);
  // The database's other shards hold connections to the same server.
  for (const auto& weak : siblings_) {
    if (auto sibling = weak.lock()) {
      asio::post(sibling->executor_,
                 [sibling, host, death] { sibling->drop_connections_to(host, death); });
    }
  }
  co_return false;
}

void Pool::drop_connections_to(const ServerHost& host, const Death& death) {
  std::vector<Lease> idle;
  for (const auto& [id, other] : connections_) {
    if (other->host() != host || other->state() == ConnectionState::closing) continue;
    // Lent and pinged ones are asked when they would be idle again (make_available).
    if (other->state() == ConnectionState::idle) idle.push_back(other);
    if (other->state() == ConnectionState::checked_out ||
        other->state() == ConnectionState::probing) {
      other->role_suspect = true;
    }
  }
  for (const auto& other : idle) evict(other, death);
}

void Pool::evict_role_changed(const Lease& connection) {
  const auto host = connection->host().describe();
  metrics_->set_server_role(host, to_string(connection->reported_role()));
  health_->failover().sign_on(host, Clock::now());
  evict(connection, connection->role_change_death());
}

}  // namespace pgvigil::pool
