// Pool: which of a database's servers a new connection goes to. Each attempt tries the hosts in
// order from the one that last matched target_session_attrs, so a failover costs one refused or
// mismatched attempt per connection until the new primary is found, and then none.
#include <spdlog/spdlog.h>

#include "pool/pool_internal.hpp"
#include "pool/server_connection.hpp"

namespace pgvigil::pool {
namespace asio = boost::asio;
using asio::awaitable;

awaitable<std::optional<ConnectFailure>> Pool::connect_to_matching_host(
    ServerConnection& connection, Clock::duration per_host_timeout) {
  const auto& server = config_->server;
  const auto hosts = server.hosts;  // a reload may replace config_ while this runs
  const auto target = server.target_session_attrs;
  // prefer-standby goes over the list twice: standbys only, then any.
  const int passes = target == TargetSessionAttrs::prefer_standby && hosts.size() > 1 ? 2 : 1;
  const std::size_t first = preferred_host_ < hosts.size() ? preferred_host_ : 0;
  std::optional<ConnectFailure> outcome;
  std::string failures;
  for (int pass = 0; pass < passes; ++pass) {
    for (std::size_t i = 0; i < hosts.size(); ++i) {
      const std::size_t index = (first + i) % hosts.size();
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
        const auto role = to_string(connection.role().role);
        metrics_->set_server_role(host.describe(), role);
        if (health_->failover().moved_to(host.describe())) {
          metrics_->record_failover();
          spdlog::warn("pool {}: moved to {} ({}): the server used until now does not answer "
                       "as {}", name_, host.describe(), role, to_string(target));
        }
        preferred_host_ = index;
        co_return std::nullopt;
      }
      if (failure->cause == ConnectFailureCause::role_mismatch) {
        metrics_->set_server_role(host.describe(), to_string(connection.role().role));
      }
      // The host in use refused, did not answer or answered in another role: a failover may
      // have begun (failover_clock.hpp).
      health_->failover().sign_on(host.describe(), deadline - per_host_timeout);
      if (hosts.size() == 1) co_return failure;
      failures += (failures.empty() ? "" : "; ") + host.describe() + ": " + failure->message;
      // A server that answered with the wrong role says more than one that did not answer: the
      // database is there, waiting for a promotion.
      if (!outcome || failure->cause == ConnectFailureCause::role_mismatch) {
        outcome = ConnectFailure{failure->cause, {}};
      }
      if (stopping_) break;
    }
    if (stopping_) break;
  }
  connection.close();
  outcome->message = failures;
  co_return outcome;
}

void Pool::evict_role_changed(const Lease& connection) {
  const auto host = connection->host().describe();
  metrics_->set_server_role(host, to_string(connection->reported_role()));
  health_->failover().sign_on(host, Clock::now());
  evict(connection, connection->role_change_death());
}

}  // namespace pgvigil::pool
