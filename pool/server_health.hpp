#pragma once
// What pgvigil believes about one server as a whole. The connections to one server share its
// fate: when one of them dies of a network timeout, or a request goes unanswered for
// ping.interval, the others are asked at once instead of at their next ping, and when no other
// path answers within ping.timeout the server is down for every connection to it, idle or lent.
//
//   healthy --sign of trouble--> suspect --no path answers--> down
//      ^                            |                           |
//      +------- any answer ---------+---------------------------+
//
// One object per database, shared by its shards (each a Pool on its own worker), so every entry
// point is thread-safe. It holds no executor: the pools (HealthListener) probe and evict on their
// own, and report back. The state changes are logged once each and exported as
// pgvigil_server_health, pgvigil_server_verdicts_total and pgvigil_server_verdict_seconds.

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "metrics/registry.hpp"
#include "pool/failover_clock.hpp"
#include "pool/host_load.hpp"
#include "pool/failure_diagnosis.hpp"

namespace pgvigil::pool {

enum class HealthState : std::uint8_t { healthy, suspect, down };

std::string_view to_string(HealthState state);

// What a server's health asks of a pool that reaches it. Called from any thread, never under the
// health's lock; the pool hops onto its own executor.
class HealthListener {
 public:
  virtual ~HealthListener() = default;
  // Ask the server now on every path the pool has (a ping on each idle connection, or a fresh
  // connection when none is idle), each due within ping.timeout; then call
  // ServerHealth::answered() at the first answer, or probe_unanswered(round) when none came.
  virtual void probe_server(std::uint64_t round) = 0;
  // The server is down: every connection to it goes, with this death (reason server_down).
  virtual void server_down(const Death& death) = 0;
};

class ServerHealth {
 public:
  // pool, server: the metric labels and the words of the log.
  ServerHealth(std::string pool, std::string server, std::shared_ptr<metrics::PoolMetrics> metrics);

  // A pool (a shard) of the database starts reaching the server.
  void join(std::weak_ptr<HealthListener> listener);

  HealthState state() const { return state_.load(std::memory_order_relaxed); }

  // One connection's sign of trouble (`sign` says which and why), first seen at `first_seen`: a
  // healthy server turns suspect and every pool probes it. Nothing more while suspect or down.
  void sign_of_trouble(const std::string& sign, Clock::time_point first_seen);
  // The server answered (a ping, a connection made): healthy again. One atomic load while it
  // is healthy, so every ping may call it.
  void answered();
  // A pool's probes of `round` all went unanswered. When every pool asked has said so, the
  // server is down.
  void probe_unanswered(std::uint64_t round);

  // Why the server is down (or suspect), for the errors clients get; "" while healthy.
  std::string verdict() const;

  // A reload pointed the database at another server: healthy, under that name.
  void rename(const std::string& server);
  // Which host of the list is in use, and the time a move to another took (failover_clock.hpp).
  // Shared by the shards, so a move counts once.
  FailoverClock& failover() { return failover_; }
  // The connections on each server of the list, all shards together.
  HostLoad& host_load() { return host_load_; }

 private:
  void set_state(HealthState next);  // under mutex_

  const std::string pool_;
  std::shared_ptr<metrics::PoolMetrics> metrics_;
  std::atomic<HealthState> state_{HealthState::healthy};
  mutable std::mutex mutex_;
  std::string server_;
  FailoverClock failover_;
  HostLoad host_load_;
  std::vector<std::weak_ptr<HealthListener>> listeners_;
  std::uint64_t round_ = 0;
  int unanswered_due_ = 0;  // pools of the current round that have not reported yet
  std::string first_sign_;
  Clock::time_point first_seen_{};
  Clock::time_point down_since_{};
};

}  // namespace pgvigil::pool
