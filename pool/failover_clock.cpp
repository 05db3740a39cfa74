#include "pool/failover_clock.hpp"

namespace pgvigil::pool {

void FailoverClock::set_sign(std::optional<Clock::time_point> at) {
  first_sign_ = at;
  has_sign_.store(at.has_value(), std::memory_order_relaxed);
}

bool FailoverClock::moved_to(const std::string& host) {
  std::lock_guard lock(mutex_);
  if (current_host_ == host) {
    if (!move_pending_.load(std::memory_order_relaxed)) set_sign(std::nullopt);
    return false;
  }
  const bool moved = !current_host_.empty();
  current_host_ = host;
  // A move without a sign (none was seen in time) is counted, but not timed. A move while
  // another waits (A to B, then B to C before B served): the clock runs on from A's sign, as
  // no transaction was served in between.
  move_pending_.store(moved && first_sign_.has_value(), std::memory_order_relaxed);
  if (!moved) set_sign(std::nullopt);
  return moved;
}

void FailoverClock::sign_on(const std::string& host, Clock::time_point at) {
  std::lock_guard lock(mutex_);
  if (host != current_host_ || move_pending_.load(std::memory_order_relaxed)) return;
  if (!first_sign_ || at < *first_sign_) set_sign(at);
}

void FailoverClock::sign_on_current(Clock::time_point at) {
  std::lock_guard lock(mutex_);
  if (current_host_.empty() || move_pending_.load(std::memory_order_relaxed)) return;
  if (!first_sign_ || at < *first_sign_) set_sign(at);
}

void FailoverClock::server_answered() {
  std::lock_guard lock(mutex_);
  if (!move_pending_.load(std::memory_order_relaxed)) set_sign(std::nullopt);
}

void FailoverClock::answered_on(const std::string& host) {
  std::lock_guard lock(mutex_);
  if (host == current_host_ && !move_pending_.load(std::memory_order_relaxed)) {
    set_sign(std::nullopt);
  }
}

std::optional<Clock::duration> FailoverClock::served_on(const std::string& host) {
  std::lock_guard lock(mutex_);
  if (!move_pending_.load(std::memory_order_relaxed) || host != current_host_ || !first_sign_) {
    return std::nullopt;
  }
  const auto took = Clock::now() - *first_sign_;
  set_sign(std::nullopt);
  move_pending_.store(false, std::memory_order_relaxed);
  return took;
}

void FailoverClock::reset() {
  std::lock_guard lock(mutex_);
  current_host_.clear();
  set_sign(std::nullopt);
  move_pending_.store(false, std::memory_order_relaxed);
}

}  // namespace pgvigil::pool
