#pragma once
// Which worker a new client goes to (listen.pack_until_busy).
//
// Spreading clients over every worker costs CPU when the cores are also busy with the clients
// and the server: each worker then has part of the events, so it sleeps and wakes more often per
// transaction, and on a loaded machine a wake-up is the dearest thing a process does (two
// workers on two shared cores spent 15-20 % more CPU per transaction than one and relayed less;
// bench/results/workers-ab.md). So new clients fill the first worker until its loop is busy for
// pack_until_busy of a core, then the next, and so on; when every worker is that busy, the least
// busy one.
//
// Clients that connected while everything was idle (a pool filled at start-up) would all sit on
// the first worker when their load comes. So a worker over the mark moves sessions, one per
// sampling period, to a worker well below it (kReturnBelow of the mark) that has sampled itself
// since the last session promised to it: a session that is
// between transactions, holding no server connection, continues on the other worker and its
// shard of the pool (ClientSession::move_to_worker). One per period, because the samples must
// see a move's effect before the next, or sessions would flap between workers; and each move
// can cost the pool a closed and a new server connection (a shard lends its place).
//
// Each worker measures itself: its thread's CPU time over the last sampling period. Worker 0
// then picks the target, which the listener steers the kernel to (listener.hpp).

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
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
  // What sample() does with what it measured: `share` of a core is the worker's latest, and a
  // new sampling period begins (its move, its promised sessions measured). Public so tests can
  // give exact shares instead of spinning on a loaded machine.
  void publish(std::size_t worker, double share);
  // Picks the target from the latest samples; true when it changed. Called by one thread only.
  bool retarget();
  // The latest sample of `worker`: the share of one core its thread used. Thread-safe.
  double busy(std::size_t worker) const;

  // On worker `worker`'s thread (its LingerSweep): where one of its sessions may move now, if
  // anywhere: the least busy worker well below the mark that `can_take` (the session's database
  // has a shard there); nullopt when this worker is not over the mark, no such worker is there,
  // or it moved one already in this sampling period. A worker found takes the period's move.
  std::optional<std::size_t> move_target(std::size_t worker,
                                         const std::function<bool(std::size_t)>& can_take);
  // A session moved to `worker` (pgvigil_worker_sessions_moved_in_total). Thread-safe.
  void count_moved_in(std::size_t worker) {
    workers_[worker].moved_in.fetch_add(1, std::memory_order_relaxed);
  }
  std::uint64_t moved_in(std::size_t worker) const {
    return workers_[worker].moved_in.load(std::memory_order_relaxed);
  }
  // Whether worker `worker` should look for a session to move now (cheap; its own thread).
  bool may_move_from(std::size_t worker) const {
    return workers_[worker].may_move && busy(worker) >= pack_until_busy_;
  }

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
    std::atomic<std::uint64_t> moved_in{0};
    // Moves promised to this worker (move_target), and how many of them its last sample came
    // after: it takes no further session until it has measured itself with the last one.
    std::atomic<std::uint64_t> promised{0};
    std::atomic<std::uint64_t> promised_measured{0};
    // Only the worker's own thread touches these.
    std::int64_t last_cpu_ns = -1;
    std::int64_t last_wall_ns = 0;
    bool may_move = false;  // no session moved away since the last sample
  };

  double pack_until_busy_;
  std::vector<Worker> workers_;
  std::atomic<std::size_t> target_{0};
};

}  // namespace pgvigil::proxy
