#include "pool/pool.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>

#include "pool/server_connection.hpp"
#include "probes/socket_options.hpp"

namespace pgvigil::pool {
namespace asio = boost::asio;
using asio::awaitable;
using Seconds = std::chrono::duration<double>;

metrics::PoolLabelSets pool_label_sets() {
  metrics::PoolLabelSets sets;
  for (auto reason : kAllEvictionReasons) sets.eviction_reasons.emplace_back(to_string(reason));
  for (auto cause : kAllConnectFailureCauses) {
    sets.connect_failure_causes.emplace_back(to_string(cause));
  }
  for (auto state : kAllConnectionStates) sets.connection_states.emplace_back(to_string(state));
  return sets;
}

namespace {

// A connection a client gives back is usually lent again within microseconds. Watching it at
// once would cost a coroutine, a timer and an epoll re-arm per transaction, so a watcher starts
// only once it has stayed idle for kWatchDelay; until then the peek at checkout covers it.
constexpr auto kWatchDelay = std::chrono::milliseconds(20);

// Checkout waits reach their histogram in batches (see Pool::metrics_publish_).
constexpr auto kMetricsPublishPeriod = std::chrono::milliseconds(10);

std::string stop_detail(EvictionReason reason) {
  return reason == EvictionReason::reload ? "the database was removed from the configuration"
                                          : "pgvigil is stopping";
}

}  // namespace

struct Pool::Waiter {
  Clock::time_point deadline;
  Lease granted;
  bool done = false;  // granted, timed out or woken by a stopping pool
  // How Pool::wake wakes it, once. A coroutine checkout waits on its own timer, which expires
  // at the deadline and is cancelled to wake it early.
  std::optional<asio::steady_timer> timer;
  // A callback waiter (wait_for_connection) has its completion posted.
  std::function<void(CheckoutResult)> on_checkout;
  Clock::time_point started;
  Milliseconds timeout{};
};

Pool::Pool(asio::io_context::executor_type executor, PoolConfig config,
           std::shared_ptr<metrics::PoolMetrics> metrics)
    : home_(executor),
      executor_(executor),
      name_(config.name),
      config_(std::make_shared<const PoolConfig>(std::move(config))),
      metrics_(std::move(metrics)),
      maintenance_timer_(executor),
      watch_start_(executor),
      metrics_publish_(executor),
      waiter_deadline_timer_(executor),
      backoff_(config_->pool.reconnect) {}

Pool::~Pool() = default;

void Pool::start() {
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
  deferred.timer.async_wait([self = shared_from_this(), &deferred, task](boost::system::error_code) {
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
  connection->close();
  adjust_count(ConnectionState::closing, -1);
  connections_.erase(connection->id());
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
  std::lock_guard lock(failure_mutex_);
  status.last_connect_failure = last_connect_failure_;
  return status;
}

void Pool::evict(const Lease& connection, const Death& death) {
  if (connection->state() == ConnectionState::closing) return;
  const auto latency = std::max(Seconds(Clock::now() - death.last_sign_of_life), Seconds(0));
  const auto planned = !is_death(death.reason);
  transition(*connection, ConnectionState::closing);
  metrics_->record_eviction(to_string(death.reason), planned ? Seconds(0) : latency);
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

void Pool::make_available(const Lease& connection) {
  const auto now = Clock::now();
  if (connection->endpoint_generation != endpoint_generation_) {
    evict(connection, {EvictionReason::reload, "server settings changed by a reload", now});
    return;
  }
  if (now >= connection->expires_at()) {
    evict(connection, {EvictionReason::max_lifetime, "lifetime reached", now});
    return;
  }
  while (!waiters_.empty()) {
    auto waiter = waiters_.front();
    waiters_.pop_front();
    if (waiter->done) continue;
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

Lease Pool::try_checkout_now() {
  if (stopping_ || !on_own_thread()) return nullptr;
  auto connection = newest_healthy_idle();
  // Quiet for longer than validate_after_idle: checkout() pings it first.
  if (!connection || long_idle(*connection, Clock::now())) return nullptr;
  transition(*connection, ConnectionState::checked_out);
  if (connection->watched) connection->detach();
  count_checkout_wait(Clock::duration::zero());
  return connection;
}

Lease Pool::newest_healthy_idle() {
  while (!idle_.empty()) {
    auto connection = idle_.back();
    const auto death = check_before_lending(*connection);
    if (!death) return connection;
    evict(connection, *death);
  }
  return nullptr;
}

bool Pool::long_idle(const ServerConnection& connection, Clock::time_point now) const {
  return now - connection.last_alive() >= config_->pool.validate_after_idle;
}

std::optional<Death> Pool::check_before_lending(ServerConnection& connection) {
  const auto now = Clock::now();
  if (now >= connection.expires_at()) {
    return Death{EvictionReason::max_lifetime, "lifetime reached", now};
  }
  // The cheap check is one peek and no round trip, so every lending gets it: a backend
  // terminated a moment ago has left its FATAL and FIN on the socket. A connection idle past
  // validate_after_idle also has its kernel TCP state read (and is pinged by the caller).
  if (auto death = connection.quick_check(long_idle(connection, now))) {
    auto failed = *death;
    failed.detail = "checkout check: " + failed.detail;
    // A probe-level reason (server_error, keepalive_timeout) says more than the generic one.
    if (failed.reason == EvictionReason::server_closed) {
      failed.reason = EvictionReason::checkout_check_failed;
    }
    return failed;
  }
  return std::nullopt;
}

awaitable<CheckoutResult> Pool::checkout_here(Milliseconds timeout) {
  const auto started = Clock::now();
  const auto deadline = started + timeout;
  while (true) {
    while (auto connection = newest_healthy_idle()) {
      // Silent for longer than validate_after_idle: prove the server answers before lending.
      if (long_idle(*connection, Clock::now())) {
        connection->detach();  // the idle watcher stops; the ping waits on the socket instead
        transition(*connection, ConnectionState::probing);
        const auto outcome =
            co_await connection->ping(config_->ping.query, Clock::now() + config_->ping.timeout);
        if (connection->state() != ConnectionState::probing) continue;  // shut down meanwhile
        if (const auto* death = std::get_if<Death>(&outcome)) {
          evict(connection, *death);
          continue;
        }
        metrics_->observe_ping(std::get<Clock::duration>(outcome));
      }
      transition(*connection, ConnectionState::checked_out);
      connection->detach();
      count_checkout_wait(Clock::now() - started);
      co_return connection;
    }
    if (stopping_) {
      co_return CheckoutError{CheckoutError::Kind::shutting_down, stop_detail(stop_reason_)};
    }
    if (Clock::now() >= deadline) break;

    auto waiter = std::make_shared<Waiter>();
    waiter->deadline = deadline;
    waiter->timer.emplace(executor_, deadline);
    enqueue(waiter);
    co_await waiter->timer->async_wait(asio::as_tuple(asio::use_awaitable));
    waiter->done = true;
    if (waiter->granted) {
      count_checkout_wait(Clock::now() - started);
      co_return waiter->granted;
    }
    std::erase(waiters_, waiter);
  }
  co_return checkout_failure(timeout);
}

CheckoutError Pool::checkout_failure(Milliseconds timeout) {
  metrics_->record_checkout_timeout();
  std::lock_guard lock(failure_mutex_);
  if (!last_connect_failure_.empty()) {
    return CheckoutError{CheckoutError::Kind::server_unreachable,
                         "server " + config_->server.describe() +
                             " is unreachable: " + last_connect_failure_};
  }
  // Nothing healthy and connects still pending: the server (or the path) does not answer, which
  // is not the same as a pool whose connections are all busy.
  const auto count = [this](ConnectionState state) {
    return counts_[static_cast<std::size_t>(state)];
  };
  if (count(ConnectionState::checked_out) == 0 && count(ConnectionState::connecting) > 0) {
    return CheckoutError{CheckoutError::Kind::server_unreachable,
                         "server " + config_->server.describe() +
                             " is not answering: connection attempts still pending after " +
                             std::to_string(timeout.count()) + " ms"};
  }
  return CheckoutError{CheckoutError::Kind::timeout, "no server connection became free within " +
                                                         std::to_string(timeout.count()) + " ms"};
}

void Pool::wait_for_connection(Milliseconds timeout, std::function<void(CheckoutResult)> done) {
  auto waiter = std::make_shared<Waiter>();
  waiter->started = Clock::now();
  waiter->timeout = timeout;
  waiter->deadline = waiter->started + timeout;
  waiter->on_checkout = std::move(done);
  enqueue(waiter);
  if (waiter->deadline < waiter_deadline_at_) arm_waiter_deadline(waiter->deadline);
}

void Pool::arm_waiter_deadline(Clock::time_point at) {
  waiter_deadline_at_ = at;
  waiter_deadline_timer_.expires_at(at);  // replaces a later wait, if any
  waiter_deadline_timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (ec) return;  // replaced by an earlier deadline, or the pool stopped
    self->waiter_deadline_at_ = Clock::time_point::max();
    self->expire_waiters();
  });
}

void Pool::wake(const std::shared_ptr<Waiter>& waiter) {
  if (waiter->done) return;
  waiter->done = true;
  if (waiter->timer) {
    waiter->timer->cancel();
    return;
  }
  auto result = waiter->granted ? CheckoutResult(waiter->granted)
                : stopping_     ? CheckoutResult(CheckoutError{CheckoutError::Kind::shutting_down,
                                                               stop_detail(stop_reason_)})
                                : CheckoutResult(checkout_failure(waiter->timeout));
  if (waiter->granted) count_checkout_wait(Clock::now() - waiter->started);
  // Posted, so that a connection given back inside another session's handler does not run this
  // session's relay inside it.
  asio::post(executor_,
             [done = std::move(waiter->on_checkout), result = std::move(result)]() mutable {
               done(std::move(result));
             });
}

void Pool::expire_waiters() {
  const auto now = Clock::now();
  auto next = Clock::time_point::max();
  std::vector<std::shared_ptr<Waiter>> expired;
  std::erase_if(waiters_, [&](const std::shared_ptr<Waiter>& waiter) {
    if (waiter->done) return true;
    if (waiter->timer) return false;  // a coroutine checkout times out on its own timer
    if (waiter->deadline <= now) {
      expired.push_back(waiter);
      return true;
    }
    next = std::min(next, waiter->deadline);
    return false;
  });
  for (const auto& waiter : expired) wake(waiter);
  if (next != Clock::time_point::max()) arm_waiter_deadline(next);
}

void Pool::enqueue(const std::shared_ptr<Waiter>& waiter) {
  waiters_.push_back(waiter);
  // A waiting client shortens the reconnect back-off (max_delay_while_clients_wait).
  if (backoff_.failures() > 0) {
    next_connect_at_ = std::min(
        next_connect_at_, last_failure_at_ + config_->pool.reconnect.max_delay_while_clients_wait);
  }
  wake_maintenance();
}

bool Pool::on_own_thread() const {
  return home_.running_in_this_thread();
}

awaitable<CheckoutResult> Pool::checkout(Milliseconds timeout) {
  // Client sessions run on the pool's own worker: no hop, no extra scheduling round.
  if (on_own_thread()) co_return co_await checkout_here(timeout);
  // A named local, not a temporary: see Pool::shutdown.
  auto task = [self = shared_from_this(), timeout] { return self->checkout_here(timeout); };
  co_return co_await asio::co_spawn(executor_, std::move(task), asio::use_awaitable);
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
    transition(*connection, ConnectionState::probing);
    const auto outcome =
        co_await connection->ping(config_->ping.query, Clock::now() + config_->ping.timeout);
    if (connection->state() != ConnectionState::probing) break;  // evicted meanwhile (shutdown)
    if (const auto* death = std::get_if<Death>(&outcome)) {
      evict(connection, *death);
      break;
    }
    metrics_->observe_ping(std::get<Clock::duration>(outcome));
    if (auto tcp = connection->tcp_snapshot()) metrics_->observe_server_rtt(tcp->rtt);
    make_available(connection);
  }
  connection->watched = false;
}

// --- maintenance ----------------------------------------------------------------------------

void Pool::wake_maintenance() { maintenance_timer_.cancel(); }

int Pool::waiting_clients() const {
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
  const auto& settings = config_->pool;
  const auto count = [this](ConnectionState state) {
    return counts_[static_cast<std::size_t>(state)];
  };
  const int connecting = count(ConnectionState::connecting);
  const int spare = count(ConnectionState::idle) + count(ConnectionState::probing) + connecting;
  const int live = spare + count(ConnectionState::checked_out);
  int wanted = std::max(settings.min_idle - spare, waiting_clients() - connecting);
  wanted = std::min(wanted, settings.max_size - live);
  if (backoff_.failures() > 0) {
    // While the server refuses, one attempt at a time, on the back-off schedule: no herd.
    wanted = now < next_connect_at_ ? 0 : std::min(wanted, 1 - connecting);
  }
  for (int i = 0; i < wanted; ++i) {
    asio::co_spawn(
        executor_, [self = shared_from_this()] { return self->open_connection(); },
        asio::detached);
  }
}

awaitable<void> Pool::maintain() {
  while (!stopping_) {
    const auto now = Clock::now();
    close_expired_idle(now);
    trim_one_idle(now);
    open_missing(now);
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
  metrics_->record_keepalive_mismatch();
  spdlog::warn("pool {}: keep-alive options on connection {} differ from the config: {}", name_,
               connection.id(), mismatch);
}

awaitable<void> Pool::open_connection() {
  auto connection = std::make_shared<ServerConnection>(home_, config_, ++next_id_);
  connection->endpoint_generation = endpoint_generation_;
  connections_.emplace(connection->id(), connection);
  adjust_count(ConnectionState::connecting, +1);

  const auto started = Clock::now();
  auto failure = co_await connection->connect(started + config_->pool.connect_timeout);
  const auto now = Clock::now();
  if (stopping_ && !failure) failure = ConnectFailure{ConnectFailureCause::other, "stopping"};
  if (failure) {
    // Count it as a closed attempt: connecting -> closing -> gone, without an eviction.
    transition(*connection, ConnectionState::closing);
    forget(connection);
    if (stopping_) co_return;
    metrics_->record_connect_failure(to_string(failure->cause));
    last_failure_at_ = now;
    const auto delay = backoff_.next_delay(waiting_clients() > 0);
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
  metrics_->observe_connect(now - started);
  if (connection->endpoint_generation != endpoint_generation_) {
    // The server it reached is no longer the configured one; make_available evicts it.
  } else if (connection->config().keepalive != config_->keepalive) {
    apply_keepalive_to(*connection);  // a reload changed the options while it was connecting
  } else {
    verify_keepalive(*connection);
  }
  if (auto tcp = connection->tcp_snapshot()) metrics_->observe_server_rtt(tcp->rtt);
  const auto& settings = config_->pool;
  if (settings.max_lifetime.count() > 0) {
    std::uniform_real_distribution<double> cut(0.0, settings.lifetime_jitter);
    const auto lifetime = std::chrono::duration_cast<Clock::duration>(
        settings.max_lifetime * (1.0 - cut(random_)));
    connection->set_expires_at(now + lifetime);
  }
  connection->set_idle_since(now);
  spdlog::debug("pool {}: connected {} to {} backend_pid={} in {:.1f} ms", name_, connection->id(),
                connection->server_address(), connection->backend_pid(),
                Seconds(now - started).count() * 1000);
  make_available(connection);
  wake_maintenance();
}

// --- shutdown -------------------------------------------------------------------------------

awaitable<void> Pool::shutdown_here() {
  stopping_ = true;
  maintenance_timer_.cancel();
  waiter_deadline_timer_.cancel();
  waiter_deadline_at_ = Clock::time_point::max();
  for (const auto& waiter : std::exchange(waiters_, {})) {
    if (!waiter->done) wake(waiter);
  }
  std::vector<Lease> pooled;
  for (const auto& [id, connection] : connections_) {
    const auto state = connection->state();
    if (state == ConnectionState::idle || state == ConnectionState::probing) {
      pooled.push_back(connection);
    } else if (state == ConnectionState::connecting) {
      connection->detach();  // ends the connect wait; open_connection closes it
    }
  }
  for (const auto& connection : pooled) {
    evict(connection, {stop_reason_, stop_detail(stop_reason_), Clock::now()});
  }
  co_return;
}

// --- reload ---------------------------------------------------------------------------------

awaitable<void> Pool::update_config_here(PoolConfig config) {
  const auto old = config_;
  config_ = std::make_shared<const PoolConfig>(std::move(config));
  backoff_.update(config_->pool.reconnect);
  const auto now = Clock::now();
  if (old->server != config_->server) {
    // Drain: nothing of the old server is lent again. Leased and connecting ones are evicted
    // by make_available when they would become idle.
    ++endpoint_generation_;
    backoff_.reset();
    next_connect_at_ = {};
    {
      std::lock_guard lock(failure_mutex_);
      last_connect_failure_.clear();
    }
    const std::vector<Lease> idle(idle_.begin(), idle_.end());
    for (const auto& connection : idle) {
      evict(connection, {EvictionReason::reload, "server settings changed by a reload", now});
    }
    // A probing connection's ping ends in make_available, which evicts it then.
  } else {
    const bool keepalive_changed = old->keepalive != config_->keepalive;
    const bool lifetime_changed = old->pool.max_lifetime != config_->pool.max_lifetime ||
                                  old->pool.lifetime_jitter != config_->pool.lifetime_jitter;
    for (const auto& [id, connection] : connections_) {
      const auto state = connection->state();
      // A connecting one is checked against the new options once connected (open_connection).
      if (state == ConnectionState::connecting || state == ConnectionState::closing) continue;
      if (keepalive_changed) {
        apply_keepalive_to(*connection);
      } else {
        connection->set_config(config_);
      }
      if (lifetime_changed) {
        const auto& settings = config_->pool;
        if (settings.max_lifetime.count() == 0) {
          connection->set_expires_at(Clock::time_point::max());
        } else {
          std::uniform_real_distribution<double> cut(0.0, settings.lifetime_jitter);
          connection->set_expires_at(
              connection->created_at() +
              std::chrono::duration_cast<Clock::duration>(settings.max_lifetime *
                                                          (1.0 - cut(random_))));
        }
      }
    }
  }
  close_surplus_idle();
  wake_maintenance();
  co_return;
}

void Pool::close_surplus_idle() {
  const auto count = [this](ConnectionState state) {
    return counts_[static_cast<std::size_t>(state)];
  };
  int live = count(ConnectionState::connecting) + count(ConnectionState::idle) +
             count(ConnectionState::probing) + count(ConnectionState::checked_out);
  // The least recently used first; leased ones are over the limit until they come back, and
  // the maintenance task opens none while live >= max_size.
  while (live > config_->pool.max_size && !idle_.empty()) {
    const auto connection = idle_.front();
    evict(connection, {EvictionReason::reload, "pool.max_size reduced by a reload", Clock::now()});
    --live;
  }
}

awaitable<void> Pool::retire_here() {
  stop_reason_ = EvictionReason::reload;
  co_await shutdown_here();
  // Leased connections are evicted as they come back (on_return), connecting ones as their
  // attempt ends; the pool is gone once nothing is left.
  asio::steady_timer poll(executor_);
  while (!connections_.empty()) {
    poll.expires_after(std::chrono::milliseconds(100));
    co_await poll.async_wait(asio::as_tuple(asio::use_awaitable));
  }
}

// GCC 12 destroys a temporary with a destructor twice when it stands inside a co_await
// expression; the lambdas that hop onto the pool's executor are therefore named locals.

awaitable<void> Pool::shutdown() {
  auto task = [self = shared_from_this()] {
    self->stop_reason_ = EvictionReason::shutdown;
    return self->shutdown_here();
  };
  co_await asio::co_spawn(executor_, std::move(task), asio::use_awaitable);
}

awaitable<void> Pool::update_config(PoolConfig config) {
  auto task = [self = shared_from_this(), config = std::move(config)]() mutable {
    return self->update_config_here(std::move(config));
  };
  co_await asio::co_spawn(executor_, std::move(task), asio::use_awaitable);
}

awaitable<void> Pool::retire() {
  auto task = [self = shared_from_this()] { return self->retire_here(); };
  co_await asio::co_spawn(executor_, std::move(task), asio::use_awaitable);
}

}  // namespace pgvigil::pool
