// Pool: pause and resume, for a planned switchover. Paused, the pool lends nothing and keeps
// nothing: a transaction in flight finishes and its connection closes as it comes back, so the
// old primary can be stopped with no client connection on it; checkouts wait for resume(),
// which connects afresh to whichever host matches by then.
#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>

#include "pool/pool_internal.hpp"
#include "pool/server_connection.hpp"

namespace pgvigil::pool {
namespace asio = boost::asio;

void Pool::pause() {
  // Seen at once by status(), so that an operator's pause reads back as paused.
  paused_flag_.store(true, std::memory_order_relaxed);
  asio::post(executor_, [self = shared_from_this()] { self->pause_here(); });
}

void Pool::resume() {
  paused_flag_.store(false, std::memory_order_relaxed);
  asio::post(executor_, [self = shared_from_this()] { self->resume_here(); });
}

void Pool::pause_here() {
  // A resume posted after this pause has cleared the flag already: it wins.
  if (paused_ || stopping_ || !paused_flag_.load(std::memory_order_relaxed)) return;
  paused_ = true;
  paused_at_ = Clock::now();
  cancel_debts();
  spdlog::info("pool {}: paused; {} server connections still lent close as they come back",
               name_, count(ConnectionState::checked_out));
  const auto now = Clock::now();
  const std::vector<Lease> idle(idle_.begin(), idle_.end());
  for (const auto& connection : idle) {
    evict(connection, {EvictionReason::paused, "the database was paused", now});
  }
  // A probing or connecting one goes through make_available, which closes it.
  // Waiting checkouts now wait up to pause_timeout: a coroutine one is woken to take its new
  // deadline (checkout_here), a callback one has it set here.
  auto earliest = Clock::time_point::max();
  for (const auto& waiter : waiters_) {
    if (waiter->done) continue;
    if (waiter->timer) {
      waiter->timer->cancel();
      continue;
    }
    waiter->deadline = paused_deadline(waiter->started);
    earliest = std::min(earliest, waiter->deadline);
  }
  if (earliest != Clock::time_point::max()) arm_waiter_deadline(earliest);
}

void Pool::resume_here() {
  if (!paused_ || paused_flag_.load(std::memory_order_relaxed)) return;
  paused_ = false;
  spdlog::info("pool {}: resumed; {} checkouts waiting", name_, waiting_checkouts());
  // Whatever failed before the pause says nothing about the server now in place.
  backoff_.reset();
  next_connect_at_ = {};
  wake_maintenance();
}

Clock::time_point Pool::paused_deadline(Clock::time_point started) const {
  return std::max(started, paused_at_) + config_->pool.pause_timeout;
}

CheckoutError Pool::paused_error() {
  metrics_->record_checkout_timeout();
  return CheckoutError{CheckoutError::Kind::paused,
                       "the database is paused (POST /pause) and was not resumed within "
                       "pool.pause_timeout (" +
                           std::to_string(config_->pool.pause_timeout.count()) + " ms)"};
}

}  // namespace pgvigil::pool
