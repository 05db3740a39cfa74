#pragma once
// Which worker a new client goes to (listen.pack_until_busy).
//
// Spreading clients over every worker costs CPU when the cores are also busy with the clients
// and the server: each worker then has part of the events, so it sleeps and wakes more often per
// transaction, and on a loaded machine a wake-up is the dearest thing a process does (two
// workers on two shared cores spent 15-20 % more CPU per transaction than one and relayed less;
// bench/results/workers-ab.md). So new clients fill the first worker until its loop is busy for
// pack_until_busy of a core, then the next, and so on; when every worker is that busy, the least
// busy one. A session stays on the worker it started on.
//
// Each worker measures itself: its thread's CPU time over the last sampling period. Worker 0
// then picks the target, which the listener steers the kernel to (listener.hpp).

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace pgvigil::proxy {

class WorkerPlacement {
 public:
  // How often each worker measures how busy it is.
  static constexpr std::chrono::milliseconds kSampleEvery{200};
  // A worker before the target becomes the target again only once it is this much below the
  // mark: a worker just under it would otherwise take the next burst, go over, and flap.
  static constexpr double kReturnBelow = 0.75;

  // pack_until_busy: a share of one core from 0 to 1; 0 spreads (the kernel's hash, no target).
  WorkerPlacement(std::size_t workers, double pack_until_busy);

  bool packs() const { return pack_until_busy_ > 0 && workers_.size() > 1; }
  std::size_t workers() const { return workers_.size(); }
  // The worker new clients go to now. Thread-safe.
  std::size_t target() const { return target_.load(std::memory_order_relaxed); }

  // Called by worker `worker` on its own thread, every kSampleEvery: how busy its thread was
  // since its previous call (its first call only starts the count).
  void sample(std::size_t worker);
  // Picks the target from the latest samples; true when it changed. Called by one thread only.
  bool retarget();
  // The latest sample of `worker`: the share of one core its thread used. Thread-safe.
  double busy(std::size_t worker) const;

  // A client accepted for `worker`, and how many so far (pgvigil_worker_clients_accepted_total).
  // Thread-safe.
  void count_accepted(std::size_t worker) {
    workers_[worker].accepted.fetch_add(1, std::memory_order_relaxed);
  }
  std::uint64_t accepted(std::size_t worker) const {
    return workers_[worker].accepted.load(std::memory_order_relaxed);
  }

  // The rule, apart so it can be tested: the first worker below the mark (one before `current`
  // below kReturnBelow of it), else the least busy.
  static std::size_t choose(std::span<const double> busy, std::size_t current,
                            double pack_until_busy);

 private:
  // One cache line each: every worker writes its own often, and worker 0 reads them all.
  struct alignas(64) Worker {
    std::atomic<std::uint32_t> busy_millionths{0};
    std::atomic<std::uint64_t> accepted{0};
    // Only the worker's own thread touches these.
    std::int64_t last_cpu_ns = -1;
    std::int64_t last_wall_ns = 0;
  };

  double pack_until_busy_;
  std::vector<Worker> workers_;
  std::atomic<std::size_t> target_{0};
};

}  // namespace pgvigil::proxy
