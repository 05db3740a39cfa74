#pragma once
// How many event-loop threads `workers` starts (0: one per core it may use, counted once at
// start: available_cores.hpp).
// The config loader needs it too: pool.shards: 0 means one shard per worker.

#include "daemon/available_cores.hpp"

namespace pgvigil::daemon {

inline int worker_count(int configured) {
  return configured > 0 ? configured : cores_at_start().count;
}

}  // namespace pgvigil::daemon
