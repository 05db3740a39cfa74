// Pool: the upkeep of its connections. Idle ones are watched (a close or a FATAL is noticed at
// once) and pinged when quiet; the periodic maintenance refills to min_idle with back-off,
// closes connections past their lifetime and trims one idle connection above min_idle per run.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "pool/pool_internal.hpp"
#include "pool/server_connection.hpp"
#include "probes/socket_options.hpp"

namespace pgvigil::pool {
namespace asio = boost::asio;
using asio::awaitable;
using Seconds = std::chrono::duration<double>;

void Pool::start_due_watchers() {
  if (stopping_) return;
  const auto now = Clock::now();
  std::vector<Lease> due;
  bool later = false;
  for (const auto& connection : idle_) {
    if (connection->watched) continue;
    if (now - connection->idle_since() >= kWatchDelay) {
      due.push_back(connection);
    } else {
      later = true;
    }
  }
  // Marked before spawning: a watcher may run (and evict) inline.
  for (const auto& connection : due) connection->watched = true;
  for (const auto& connection : due) {
    asio::co_spawn(
        executor_, [self = shared_from_this(), connection] { return self->watch_idle(connection); },
        asio::detached);
  }
  if (later) run_once_after(watch_start_, kWatchDelay, &Pool::start_due_watchers);
}

// --- probing idle connections ----------------------------------------------------------------

Clock::time_point Pool::jittered_ping_due(const ServerConnection& connection) {
  // Pings come early by up to jitter x interval, never late, so that the detection bound
  // ping.interval + ping.timeout holds while pings of many connections spread out.
  std::uniform_real_distribution<double> spread(0.0, config_->ping.jitter);
  const auto interval = config_->ping.interval;
  const auto early = std::chrono::duration_cast<Clock::duration>(interval * spread(random_));
  return connection.last_alive() + interval - early;
}

awaitable<void> Pool::watch_idle(Lease connection) {
  connection->watched = true;
  while (connection->state() == ConnectionState::idle) {
    if (connection->socket() < 0) {
      evict(connection, {EvictionReason::server_closed, "socket gone", connection->last_alive()});
      break;
    }
    const auto result = co_await connection->wait_ready(ServerConnection::Ready::read,
                                                        jittered_ping_due(*connection));
    if (connection->state() != ConnectionState::idle) break;
    // Aborted: it was lent and has come back meanwhile; keep watching.
    if (result == ServerConnection::WaitResult::aborted) continue;
    if (result == ServerConnection::WaitResult::ready) {
      if (auto death = connection->absorb_idle_input()) {
        evict(connection, *death);
        break;
      }
      continue;
    }
    if (!co_await ping_idle(connection)) break;
    make_available(connection);
  }
  connection->watched = false;
}

awaitable<bool> Pool::ping_idle(Lease connection) {
  transition(*connection, ConnectionState::probing);
  const auto outcome =
      co_await connection->ping(config_->ping.query, Clock::now() + config_->ping.timeout);
  // Evicted meanwhile (shutdown, or the server found down).
  if (connection->state() != ConnectionState::probing) co_return false;
  if (const auto* death = std::get_if<Death>(&outcome)) {
    evict(connection, *death);
    co_return false;
  }
  const auto server = server_label(*connection);
  metrics_->observe_ping(server, std::get<Clock::duration>(outcome));
  if (auto tcp = connection->tcp_snapshot()) metrics_->observe_server_rtt(server, tcp->rtt);
  health_->answered();
  // The host in use answers: a sign that it was going came to nothing.
  if (health_->failover().has_sign())
    health_->failover().answered_on(connection->host().describe());
  if (connection->role_changed()) {
    evict_role_changed(connection);
    co_return false;
  }
  // A server before PostgreSQL 14 does not report a promotion or a demotion: the ping asks,
  // where a role could stop matching (any role matches any and prefer-standby).
  const auto target = config_->server.target_session_attrs;
  if (!connection->reports_role() && target != TargetSessionAttrs::any &&
      target != TargetSessionAttrs::prefer_standby) {
    // A statement of its own, not inside a condition: see recheck_role.
    const bool matches = co_await confirm_role(connection, "the ping asked the server's role");
    if (!matches) co_return false;
  }
  const auto lag =
      co_await excess_replication_lag(*connection, Clock::now() + config_->ping.timeout);
  if (connection->state() != ConnectionState::probing) co_return false;
  if (lag) {
    evict(connection, *lag);
    co_return false;
  }
  co_return true;
}

// --- maintenance ----------------------------------------------------------------------------

void Pool::wake_maintenance() { maintenance_timer_.cancel(); }

int Pool::waiting_checkouts() const {
  int waiting = 0;
  for (const auto& waiter : waiters_) waiting += waiter->done ? 0 : 1;
  return waiting;
}

void Pool::close_expired_idle(Clock::time_point now) {
  std::vector<Lease> expired;
  for (const auto& connection : idle_) {
    if (now >= connection->expires_at()) expired.push_back(connection);
  }
  for (const auto& connection : expired) {
    evict(connection, {EvictionReason::max_lifetime, "lifetime reached", now});
  }
}

void Pool::trim_one_idle(Clock::time_point now) {
  // At most one per run, the one unused by clients longest, so a burst's connections drain
  // slowly instead of all at once. Pings do not count as use.
  const auto& settings = config_->pool;
  if (settings.idle_timeout.count() == 0 || static_cast<int>(idle_.size()) <= settings.min_idle) {
    return;
  }
  auto oldest = *std::min_element(idle_.begin(), idle_.end(), [](const Lease& a, const Lease& b) {
    return a->idle_since() < b->idle_since();
  });
  if (now - oldest->idle_since() >= settings.idle_timeout) {
    evict(oldest, {EvictionReason::idle_timeout, "idle above min_idle", now});
  }
}

void Pool::open_missing(Clock::time_point now) {
  if (paused_) return;  // resume() connects afresh
  pay_debts_with_room();  // a place freed here is owed before it is used again
  const auto& settings = config_->pool;
  const int connecting = count(ConnectionState::connecting);
  const int spare = count(ConnectionState::idle) + count(ConnectionState::probing) + connecting;
  const int live = live_connections();
  // A server found down is asked again by connecting, min_idle or not: a connection made is
  // what ends the verdict (clients failing fast do not wait, so nobody else would ask).
  const int asking = server_health() == HealthState::down ? 1 : 0;
  int wanted =
      std::max({settings.min_idle - spare, waiting_checkouts() - connecting, asking - connecting});
  wanted = std::min(wanted, capacity() - live);
  if (backoff_.failures() > 0) {
    // While the server refuses, one attempt at a time, on the back-off schedule: no herd.
    wanted = now < next_connect_at_ ? 0 : std::min(wanted, 1 - connecting);
  }
  for (int i = 0; i < wanted; ++i) {
    asio::co_spawn(
        executor_, [self = shared_from_this()] { return self->open_connection(); }, asio::detached);
  }
}

awaitable<void> Pool::maintain() {
  while (!stopping_) {
    const auto now = Clock::now();
    close_expired_idle(now);
    trim_one_idle(now);
    open_missing(now);
    // Waiters a sibling could not serve when they came are asked for again.
    ask_siblings();
    auto next = now + std::chrono::seconds(1);
    if (backoff_.failures() > 0 && next_connect_at_ > now) next = std::min(next, next_connect_at_);
    maintenance_timer_.expires_at(next);
    co_await maintenance_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
  }
}

void Pool::apply_keepalive_to(ServerConnection& connection) {
  connection.set_config(config_);
  if (!connection.is_tcp() || connection.socket() < 0) return;
  // Safe for a leased connection too: the lease is used on this same executor.
  if (const auto error = probes::apply_keepalive(connection.socket(), config_->keepalive)) {
    spdlog::warn("pool {}: cannot set keep-alive options on connection {}: {}", name_,
                 connection.id(), error.message());
  }
  verify_keepalive(connection);
}

void Pool::verify_keepalive(ServerConnection& connection) {
  if (!connection.is_tcp()) return;
  auto mismatch = probes::describe_keepalive_mismatch(connection.socket(), config_->keepalive);
  if (mismatch.empty()) return;
  metrics_->record_keepalive_mismatch(server_label(connection));
  spdlog::warn("pool {}: keep-alive options on connection {} differ from the config: {}", name_,
               connection.id(), mismatch);
}

awaitable<void> Pool::open_connection(std::shared_ptr<ProbeRound> probe) {
  auto connection = std::make_shared<ServerConnection>(home_, config_, ++next_id_);
  connection->endpoint_generation = endpoint_generation_;
  connections_.emplace(connection->id(), connection);
  adjust_count(ConnectionState::connecting, +1);

  const auto started = Clock::now();
  // A probe must be answered within ping.timeout, like a ping.
  const auto timeout = probe ? std::min(config_->pool.connect_timeout, config_->ping.timeout)
                             : config_->pool.connect_timeout;
  auto failure = co_await connect_to_matching_host(*connection, timeout);
  const auto now = Clock::now();
  if (stopping_ && !failure) failure = ConnectFailure{ConnectFailureCause::other, "stopping"};
  if (failure) {
    // Count it as a closed attempt: connecting -> closing -> gone, without an eviction.
    transition(*connection, ConnectionState::closing);
    forget(connection);
    if (probe) probe_done(*probe, server_answered(failure->cause));
    if (stopping_) co_return;
    if (server_unreachable(failure->cause)) {
      health_->sign_of_trouble(
          "a connection attempt failed: " + std::string(to_string(failure->cause)), started);
    }
    last_failure_at_ = now;
    auto delay = backoff_.next_delay(waiting_checkouts() > 0);
    if ((failure->cause == ConnectFailureCause::role_mismatch ||
         failure->cause == ConnectFailureCause::replication_lag) &&
        waiting_checkouts() > 0) {
      // A server answered in the wrong role, or lagging: a promotion or a replay may end it
      // any moment; the clients waiting for it are served at most initial_delay later.
      delay = std::min(delay, config_->pool.reconnect.initial_delay);
    }
    next_connect_at_ = now + delay;
    {
      std::lock_guard lock(failure_mutex_);
      last_connect_failure_ = failure->message;
    }
    if (failure_log_.allow(now)) {
      spdlog::error("pool {}: cannot connect to {}: cause={} attempt={} next_try_in={}ms{}: {}",
                    name_, config_->server.describe(), to_string(failure->cause),
                    backoff_.failures(), delay.count(),
                    failure_log_.suppressed() > 0
                        ? fmt::format(" ({} similar lines suppressed)", failure_log_.suppressed())
                        : "",
                    failure->message);
    }
    wake_maintenance();
    co_return;
  }

  health_->answered();
  if (probe) probe_done(*probe, true);
  if (backoff_.failures() > 0) {
    spdlog::info("pool {}: server {} reachable again after {} failed attempts", name_,
                 config_->server.describe(), backoff_.failures());
  }
  backoff_.reset();
  failure_log_.reset();
  {
    std::lock_guard lock(failure_mutex_);
    last_connect_failure_.clear();
  }
  metrics_->observe_connect(server_label(*connection), now - started);
  if (connection->endpoint_generation != endpoint_generation_) {
    // The server it reached is no longer the configured one; make_available evicts it.
  } else if (connection->config().keepalive != config_->keepalive) {
    apply_keepalive_to(*connection);  // a reload changed the options while it was connecting
  } else {
    verify_keepalive(*connection);
  }
  if (auto tcp = connection->tcp_snapshot()) {
    metrics_->observe_server_rtt(server_label(*connection), tcp->rtt);
  }
  const auto& settings = config_->pool;
  if (settings.max_lifetime.count() > 0) {
    std::uniform_real_distribution<double> cut(0.0, settings.lifetime_jitter);
    const auto lifetime =
        std::chrono::duration_cast<Clock::duration>(settings.max_lifetime * (1.0 - cut(random_)));
    connection->set_expires_at(now + lifetime);
  }
  connection->set_idle_since(now);
  if (probe && live_connections() > capacity()) {
    // Opened beyond max_size to ask the server (every other connection was lent): closed again.
    transition(*connection, ConnectionState::closing);
    forget(connection);
    co_return;
  }
  spdlog::debug("pool {}: connected {} to {} ({}) backend_pid={} in {:.1f} ms", name_,
                connection->id(), connection->server_address(), to_string(connection->role().role),
                connection->backend_pid(), Seconds(now - started).count() * 1000);
  make_available(connection, Arrival::opened);
  wake_maintenance();
}

}  // namespace pgvigil::pool
