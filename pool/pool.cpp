// Pool: construction, the connection states and counts, returns, eviction, and what makes a
// connection available. Lending is in pool_lending.cpp, the upkeep of idle connections in
// pool_upkeep.cpp, reload and shutdown in pool_lifecycle.cpp.
#include "pool/pool.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "pool/pool_internal.hpp"
#include "pool/server_connection.hpp"

namespace pgvigil::pool {
namespace asio = boost::asio;
using asio::awaitable;
using Seconds = std::chrono::duration<double>;
metrics::PoolLabelSets pool_label_sets(const ServerEndpoint& server) {
  metrics::PoolLabelSets sets;
  for (const auto& host : server.hosts) sets.servers.push_back(host.describe());
  for (auto reason : kAllEvictionReasons) sets.eviction_reasons.emplace_back(to_string(reason));
  for (auto cause : kAllConnectFailureCauses) {
    sets.connect_failure_causes.emplace_back(to_string(cause));
  }
  for (auto state : kAllConnectionStates) sets.connection_states.emplace_back(to_string(state));
  return sets;
}

Pool::Pool(asio::io_context::executor_type executor, PoolConfig config,
           std::shared_ptr<metrics::PoolMetrics> metrics, std::shared_ptr<ServerHealth> health)
    : home_(executor),
      executor_(executor),
      name_(config.name),
      config_(std::make_shared<const PoolConfig>(std::move(config))),
      metrics_(std::move(metrics)),
      health_(health ? std::move(health)
                     : std::make_shared<ServerHealth>(name_, config_->server.describe(), metrics_)),
      maintenance_timer_(executor),
      watch_start_(executor),
      loan_retry_(executor),
      metrics_publish_(executor),
      waiter_deadline_timer_(executor),
      backoff_(config_->pool.reconnect) {
  publish_capacity();
}

Pool::~Pool() = default;

void Pool::start() {
  health_->join(weak_from_this());
  asio::co_spawn(
      executor_, [self = shared_from_this()] { return self->maintain(); }, asio::detached);
}

// --- state --------------------------------------------------------------------------------

void Pool::adjust_count(ConnectionState state, int delta) {
  const auto index = static_cast<std::size_t>(state);
  counts_[index] += delta;
  // The gauges are set from these counts when metrics are read (connection_gauges.hpp).
  shared_counts_[index].store(counts_[index], std::memory_order_relaxed);
}

void Pool::run_once_after(Deferred& deferred, Clock::duration delay, void (Pool::*task)()) {
  if (deferred.scheduled) return;
  deferred.scheduled = true;
  deferred.timer.expires_after(delay);
  deferred.timer.async_wait(
      [self = shared_from_this(), &deferred, task](boost::system::error_code) {
        deferred.scheduled = false;
        (self.get()->*task)();
      });
}

void Pool::publish_metrics() { checkout_waits_.publish_to(*metrics_); }

void Pool::count_checkout_wait(Clock::duration wait) {
  checkout_waits_.add(wait);
  run_once_after(metrics_publish_, kMetricsPublishPeriod, &Pool::publish_metrics);
}

void Pool::transition(ServerConnection& connection, ConnectionState to) {
  const auto from = connection.state();
  if (from == to) return;
  adjust_count(from, -1);
  adjust_count(to, +1);
  connection.set_state(to);
  if (from == ConnectionState::idle) {
    // Checkouts take the most recently used connection, at the back.
    if (!idle_.empty() && idle_.back().get() == &connection) {
      idle_.pop_back();
    } else {
      std::erase_if(idle_, [&connection](const Lease& idle) { return idle.get() == &connection; });
    }
  }
}

void Pool::forget(const Lease& connection) {
  if (connection->counted_on_server) count_on_server(*connection, -1);
  connection->close();
  adjust_count(ConnectionState::closing, -1);
  connections_.erase(connection->id());
}

void Pool::count_on_server(ServerConnection& connection, int delta) {
  connection.counted_on_server = delta > 0;
  const auto server = connection.host().describe();
  health_->host_load().count(server, delta);
  std::lock_guard lock(servers_mutex_);
  auto& use = servers_in_use_[server];
  use.connections += delta;
  if (delta > 0) use.role = std::string(to_string(connection.role().role));
  if (use.connections <= 0) servers_in_use_.erase(server);
}

PoolStatus Pool::status() const {
  auto count = [this](ConnectionState state) {
    return shared_counts_[static_cast<std::size_t>(state)].load(std::memory_order_relaxed);
  };
  PoolStatus status;
  status.connecting = count(ConnectionState::connecting);
  status.idle = count(ConnectionState::idle);
  status.probing = count(ConnectionState::probing);
  status.checked_out = count(ConnectionState::checked_out);
  status.paused = paused();
  {
    std::lock_guard lock(servers_mutex_);
    const bool several = servers_in_use_.size() > 1;
    for (const auto& [server, use] : servers_in_use_) {
      status.servers += (status.servers.empty() ? "" : ", ") + server + " (" + use.role +
                        (several ? ", " + std::to_string(use.connections) : "") + ")";
    }
  }
  std::lock_guard lock(failure_mutex_);
  status.last_connect_failure = last_connect_failure_;
  return status;
}

std::string Pool::server_label(const ServerConnection& connection) const {
  // Before it picked a host, what it did concerns the list's first.
  return (connection.host_picked() ? connection.host() : config_->server.hosts.front()).describe();
}

void Pool::evict(const Lease& connection, const Death& death) {
  if (connection->state() == ConnectionState::closing) return;
  tell_health(death, connection->id());
  const auto latency = std::max(Seconds(Clock::now() - death.last_sign_of_life), Seconds(0));
  const auto planned = !is_death(death.reason);
  transition(*connection, ConnectionState::closing);
  metrics_->record_eviction(server_label(*connection), to_string(death.reason),
                            planned ? Seconds(0) : latency);
  const auto level = planned ? spdlog::level::info : spdlog::level::warn;
  spdlog::log(level,
              "pool {}: evicted server connection {} reason={} detection_latency={:.3f}s "
              "server={} backend_pid={} detail=\"{}\"",
              name_, connection->id(), to_string(death.reason), latency.count(),
              connection->server_address(), connection->backend_pid(), death.detail);
  forget(connection);
  wake_maintenance();
}

// --- lending --------------------------------------------------------------------------------

void Pool::make_available(const Lease& connection, Arrival arrival) {
  const auto now = Clock::now();
  if (connection->endpoint_generation != endpoint_generation_) {
    evict(connection, {EvictionReason::reload, "server settings changed by a reload", now});
    return;
  }
  if (connection->role_changed()) return evict_role_changed(connection);
  if (paused_) {
    evict(connection, {EvictionReason::paused, "the database was paused", now});
    return;
  }
  if (connection->role_suspect) {
    transition(*connection, ConnectionState::probing);
    asio::co_spawn(
        executor_, [self = shared_from_this(), connection] { return self->recheck_role(connection); },
        asio::detached);
    return;
  }
  if (now >= connection->expires_at()) {
    evict(connection, {EvictionReason::max_lifetime, "lifetime reached", now});
    return;
  }
  // The first connection to a host the database moved to is lent to a waiting client here, or
  // kept idle for the next one: either way transactions are served again.
  if (health_->failover().move_pending()) {
    if (const auto took = health_->failover().served_on(connection->host().describe())) {
      metrics_->observe_failover(*took);
    }
  }
  // A shard above its share owes a sibling below it this connection's place.
  if (arrival == Arrival::returned && !debts_.empty() && pay_debt(connection)) return;
  while (!waiters_.empty()) {
    auto waiter = waiters_.front();
    waiters_.pop_front();
    if (waiter->done) continue;
    // The check every lending gets (a backend terminated a moment ago); from the event loop's
    // knowledge it costs no system call. The waiter keeps its place for the next connection.
    if (auto death = check_before_lending(*connection)) {
      waiters_.push_front(std::move(waiter));
      evict(connection, *death);
      return;
    }
    waiter->granted = connection;
    transition(*connection, ConnectionState::checked_out);
    connection->detach();
    wake(waiter);
    return;
  }
  transition(*connection, ConnectionState::idle);
  idle_.push_back(connection);
  if (!connection->watched) run_once_after(watch_start_, kWatchDelay, &Pool::start_due_watchers);
}

void Pool::give_back(Lease connection, std::optional<Death> death) {
  if (on_own_thread()) return on_return(connection, std::move(death));
  asio::post(executor_, [self = shared_from_this(), connection = std::move(connection),
                         death = std::move(death)] { self->on_return(connection, death); });
}

void Pool::on_return(const Lease& connection, std::optional<Death> death) {
  if (death) return evict(connection, *death);
  if (stopping_) return evict(connection, {stop_reason_, stop_detail(stop_reason_), Clock::now()});
  connection->set_idle_since(Clock::now());
  make_available(connection);
}

}  // namespace pgvigil::pool
