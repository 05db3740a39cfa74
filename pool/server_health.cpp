#include "pool/server_health.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>

namespace pgvigil::pool {
namespace {

using Seconds = std::chrono::duration<double>;

double seconds_since(Clock::time_point since) {
  return std::max(Seconds(Clock::now() - since).count(), 0.0);
}

// The listeners still alive; the dead ones are dropped from `listeners`.
std::vector<std::shared_ptr<HealthListener>> live(
    std::vector<std::weak_ptr<HealthListener>>& listeners) {
  std::vector<std::shared_ptr<HealthListener>> alive;
  std::erase_if(listeners, [&alive](const std::weak_ptr<HealthListener>& listener) {
    auto locked = listener.lock();
    if (!locked) return true;
    alive.push_back(std::move(locked));
    return false;
  });
  return alive;
}

}  // namespace

std::string_view to_string(HealthState state) {
  switch (state) {
    case HealthState::healthy: return "healthy";
    case HealthState::suspect: return "suspect";
    case HealthState::down: return "down";
  }
  return "healthy";
}

ServerHealth::ServerHealth(std::string pool, std::string server,
                           std::shared_ptr<metrics::PoolMetrics> metrics)
    : pool_(std::move(pool)), metrics_(std::move(metrics)), server_(std::move(server)) {
  if (metrics_) metrics_->show_server(server_);
}

void ServerHealth::join(std::weak_ptr<HealthListener> listener) {
  std::lock_guard lock(mutex_);
  listeners_.push_back(std::move(listener));
}

void ServerHealth::set_state(HealthState next) {
  state_.store(next, std::memory_order_relaxed);
  if (metrics_) {
    metrics_->record_server_health(server_, to_string(next),
                                   Seconds(Clock::now() - first_seen_));
  }
}

void ServerHealth::sign_of_trouble(const std::string& sign, Clock::time_point first_seen) {
  std::vector<std::shared_ptr<HealthListener>> asked;
  std::uint64_t round = 0;
  {
    std::lock_guard lock(mutex_);
    if (state() != HealthState::healthy) return;
    first_sign_ = sign;
    first_seen_ = first_seen;
    failover_.sign_on_current(first_seen);
    round = ++round_;
    asked = live(listeners_);
    unanswered_due_ = static_cast<int>(asked.size());
    set_state(HealthState::suspect);
    spdlog::warn("pool {}: server {} is suspect ({}); asking it on every other path", pool_,
                 server_, sign);
  }
  for (const auto& listener : asked) listener->probe_server(round);
}

void ServerHealth::answered() {
  if (state() == HealthState::healthy) return;
  std::lock_guard lock(mutex_);
  const auto was = state();
  if (was == HealthState::healthy) return;
  if (was == HealthState::suspect) {
    spdlog::info("pool {}: server {} answered on another path {:.3f} s after the first sign "
                 "({}): healthy",
                 pool_, server_, seconds_since(first_seen_), first_sign_);
  } else {
    spdlog::info("pool {}: server {} answers again: healthy after {:.3f} s down", pool_, server_,
                 seconds_since(down_since_));
  }
  set_state(HealthState::healthy);
  failover_.server_answered();
}

void ServerHealth::probe_unanswered(std::uint64_t round) {
  std::vector<std::shared_ptr<HealthListener>> told;
  std::optional<Death> death;
  {
    std::lock_guard lock(mutex_);
    if (state() != HealthState::suspect || round != round_) return;
    if (--unanswered_due_ > 0) return;
    down_since_ = Clock::now();
    set_state(HealthState::down);
    death = Death{EvictionReason::server_down,
                  "server " + server_ + " is down: no other path answered within ping.timeout" +
                      " (first sign: " + first_sign_ + ")",
                  first_seen_};
    spdlog::error("pool {}: server {} is down, {:.3f} s after the first sign ({}): no other path "
                  "answered within ping.timeout; its connections go",
                  pool_, server_, seconds_since(first_seen_), first_sign_);
    told = live(listeners_);
  }
  for (const auto& listener : told) listener->server_down(*death);
}

std::string ServerHealth::verdict() const {
  std::lock_guard lock(mutex_);
  switch (state()) {
    case HealthState::healthy:
      return "";
    case HealthState::suspect:
      return "server " + server_ + " is suspect: " + first_sign_;
    case HealthState::down:
      return "server " + server_ + " is down since " +
             fmt::format("{:.1f}", seconds_since(down_since_)) +
             " s: no path answered within ping.timeout (first sign: " + first_sign_ + ")";
  }
  return "";
}

void ServerHealth::rename(const std::string& server) {
  std::lock_guard lock(mutex_);
  if (server == server_) return;
  if (metrics_) {
    metrics_->forget_server(server_);
    metrics_->show_server(server);
  }
  server_ = server;
  failover_.reset();  // the first host of the new list is not a failover
  ++round_;  // reports of a round about the old server count for nothing
  state_.store(HealthState::healthy, std::memory_order_relaxed);
}

}  // namespace pgvigil::pool
