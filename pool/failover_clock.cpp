#include "pool/failover_clock.hpp"

namespace pgvigil::pool {

bool FailoverClock::moved_to(const std::string& host) {
  std::lock_guard lock(mutex_);
  if (current_host_ == host) {
    if (!move_pending_.load(std::memory_order_relaxed)) first_sign_.reset();
    return false;
  }
  const bool moved = !current_host_.empty();
  current_host_ = host;
  // A move without a sign (none was seen in time) is counted, but not timed.
  move_pending_.store(moved && first_sign_.has_value(), std::memory_order_relaxed);
  if (!moved) first_sign_.reset();
  return moved;
}

void FailoverClock::sign_on(const std::string& host, Clock::time_point at) {
  std::lock_guard lock(mutex_);
  if (host != current_host_ || move_pending_.load(std::memory_order_relaxed)) return;
  if (!first_sign_ || at < *first_sign_) first_sign_ = at;
}

void FailoverClock::sign_on_current(Clock::time_point at) {
  std::lock_guard lock(mutex_);
  if (current_host_.empty() || move_pending_.load(std::memory_order_relaxed)) return;
  if (!first_sign_ || at < *first_sign_) first_sign_ = at;
}

void FailoverClock::server_answered() {
  std::lock_guard lock(mutex_);
  if (!move_pending_.load(std::memory_order_relaxed)) first_sign_.reset();
}

std::optional<Clock::duration> FailoverClock::lent_on(const std::string& host) {
  std::lock_guard lock(mutex_);
  if (!move_pending_.load(std::memory_order_relaxed) || host != current_host_ || !first_sign_) {
    return std::nullopt;
  }
  const auto took = Clock::now() - *first_sign_;
  first_sign_.reset();
  move_pending_.store(false, std::memory_order_relaxed);
  return took;
}

void FailoverClock::reset() {
  std::lock_guard lock(mutex_);
  current_host_.clear();
  first_sign_.reset();
  move_pending_.store(false, std::memory_order_relaxed);
}

}  // namespace pgvigil::pool
