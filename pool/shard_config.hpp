#pragma once
// How a database with pool.shards > 1 is split: each shard is an ordinary pool with its share
// of min_idle and max_size. The shares add up to the configured totals and differ by at most one,
// the lower shards taking the remainder.

#include "pool/pool_settings.hpp"

namespace pgvigil::pool {

// The configuration of shard `index` (0-based, below database.pool.shards).
PoolConfig shard_config(const PoolConfig& database, int index);

}  // namespace pgvigil::pool
