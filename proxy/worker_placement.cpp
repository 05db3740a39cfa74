#include "proxy/worker_placement.hpp"

#include <time.h>

#include <algorithm>

namespace pgvigil::proxy {
namespace {

std::int64_t clock_ns(clockid_t clock) {
  timespec now{};
  ::clock_gettime(clock, &now);
  return static_cast<std::int64_t>(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
}

}  // namespace

WorkerPlacement::WorkerPlacement(std::size_t workers, double pack_until_busy)
    : pack_until_busy_(pack_until_busy), workers_(std::max<std::size_t>(workers, 1)) {}

void WorkerPlacement::sample(std::size_t worker) {
  auto& self = workers_[worker];
  const auto cpu = clock_ns(CLOCK_THREAD_CPUTIME_ID);
  const auto wall = clock_ns(CLOCK_MONOTONIC);
  // The first call only starts the count.
  double share = busy(worker);
  if (self.last_cpu_ns >= 0 && wall > self.last_wall_ns) {
    share =
        static_cast<double>(cpu - self.last_cpu_ns) / static_cast<double>(wall - self.last_wall_ns);
  }
  self.last_cpu_ns = cpu;
  self.last_wall_ns = wall;
  publish(worker, share);
}

void WorkerPlacement::publish(std::size_t worker, double share) {
  auto& self = workers_[worker];
  self.busy_millionths.store(static_cast<std::uint32_t>(std::clamp(share, 0.0, 1.0) * 1e6),
                             std::memory_order_relaxed);
  self.may_move = packs();
  self.promised_measured.store(self.promised.load(std::memory_order_relaxed),
                               std::memory_order_relaxed);
}

std::optional<std::size_t> WorkerPlacement::move_target(
    std::size_t worker, const std::function<bool(std::size_t)>& can_take) {
  if (!may_move_from(worker)) return std::nullopt;
  std::optional<std::size_t> best;
  for (std::size_t other = 0; other < workers_.size(); ++other) {
    if (other == worker || busy(other) >= pack_until_busy_ * kReturnBelow) continue;
    // A session promised to it since its last sample does not show in its share yet.
    const auto& there = workers_[other];
    if (there.promised.load(std::memory_order_relaxed) !=
        there.promised_measured.load(std::memory_order_relaxed)) {
      continue;
    }
    if (best && busy(other) >= busy(*best)) continue;
    if (can_take(other)) best = other;
  }
  if (best) {
    workers_[worker].may_move = false;
    workers_[*best].promised.fetch_add(1, std::memory_order_relaxed);
  }
  return best;
}

double WorkerPlacement::busy(std::size_t worker) const {
  return workers_[worker].busy_millionths.load(std::memory_order_relaxed) / 1e6;
}

bool WorkerPlacement::retarget() {
  if (!packs()) return false;
  std::vector<double> shares(workers_.size());
  for (std::size_t index = 0; index < shares.size(); ++index) shares[index] = busy(index);
  const auto current = target();
  const auto chosen = choose(shares, current, pack_until_busy_);
  target_.store(chosen, std::memory_order_relaxed);
  return chosen != current;
}

std::size_t WorkerPlacement::choose(std::span<const double> busy, std::size_t current,
                                    double pack_until_busy) {
  for (std::size_t index = 0; index < busy.size(); ++index) {
    const double mark = index < current ? pack_until_busy * kReturnBelow : pack_until_busy;
    if (busy[index] < mark) return index;
  }
  return static_cast<std::size_t>(std::min_element(busy.begin(), busy.end()) - busy.begin());
}

}  // namespace pgvigil::proxy
