#pragma once
// How many event-loop threads `workers` starts (0: one per core). The config loader needs it
// too: pool.shards: 0 means one shard per worker.

#include <algorithm>
#include <thread>

namespace pgvigil::daemon {

inline int worker_count(int configured) {
  if (configured > 0) return configured;
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

}  // namespace pgvigil::daemon
