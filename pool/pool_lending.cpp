// Pool: lending. The synchronous fast path for the relay, the coroutine checkout that pings a
// long-idle connection first, and the waiters (callbacks and coroutines) served first come,
// first served.
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

Lease Pool::try_checkout_now() {
  if (stopping_ || paused_ || !on_own_thread()) return nullptr;
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
  // The cheap check has no round trip, so every lending gets it: a backend terminated a moment
  // ago has left its FATAL and FIN on the socket, which the event loop has seen or a peek finds.
  // A connection idle past validate_after_idle is peeked at, has its kernel TCP state read, and
  // is pinged by the caller.
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
  auto deadline = started + timeout;
  while (true) {
    while (auto connection = paused_ ? nullptr : newest_healthy_idle()) {
      // Silent for longer than validate_after_idle: prove the server answers before lending.
      if (long_idle(*connection, Clock::now())) {
        connection->detach();  // the idle watcher stops; the ping waits on the socket instead
        if (!co_await ping_idle(connection)) continue;
        // Paused while it was pinged: it goes, as it would have had it been idle.
        if (paused_) {
          make_available(connection);
          continue;
        }
      }
      transition(*connection, ConnectionState::checked_out);
      connection->detach();
      count_checkout_wait(Clock::now() - started);
      co_return connection;
    }
    if (stopping_) {
      co_return CheckoutError{CheckoutError::Kind::shutting_down, stop_detail(stop_reason_)};
    }
    if (failing_fast()) co_return server_down_error();
    if (paused_) deadline = paused_deadline(started);
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
  co_return paused_ ? paused_error() : checkout_failure(timeout);
}

CheckoutError Pool::checkout_failure(Milliseconds timeout) {
  metrics_->record_checkout_timeout();
  std::lock_guard lock(failure_mutex_);
  if (!last_connect_failure_.empty()) {
    return CheckoutError{
        CheckoutError::Kind::server_unreachable,
        "server " + config_->server.describe() + " is unreachable: " + last_connect_failure_};
  }
  // Nothing healthy and connects still pending: the server (or the path) does not answer, which
  // is not the same as a pool whose connections are all busy.
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
  if (failing_fast()) {
    asio::post(executor_, [done = std::move(done), error = server_down_error()]() mutable {
      done(std::move(error));
    });
    return;
  }
  auto waiter = std::make_shared<Waiter>();
  waiter->started = Clock::now();
  waiter->timeout = timeout;
  waiter->deadline = waiter->started + timeout;
  if (paused_) waiter->deadline = paused_deadline(waiter->started);
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
                : failing_fast() ? CheckoutResult(server_down_error())
                : paused_        ? CheckoutResult(paused_error())
                                 : CheckoutResult(checkout_failure(waiter->timeout));
  if (waiter->granted) count_checkout_wait(Clock::now() - waiter->started);
  // Posted, so that a connection given back inside another session's handler does not run this
  // session's relay inside it.
  asio::post(executor_, [done = std::move(waiter->on_checkout),
                         result = std::move(result)]() mutable { done(std::move(result)); });
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
  ask_siblings();
}

bool Pool::on_own_thread() const { return home_.running_in_this_thread(); }

awaitable<CheckoutResult> Pool::checkout(Milliseconds timeout) {
  // Client sessions run on the pool's own worker: no hop, no extra scheduling round.
  if (on_own_thread()) co_return co_await checkout_here(timeout);
  // A named local, not a temporary: see Pool::shutdown.
  auto task = [self = shared_from_this(), timeout] { return self->checkout_here(timeout); };
  co_return co_await asio::co_spawn(executor_, std::move(task), asio::use_awaitable);
}

}  // namespace pgvigil::pool
