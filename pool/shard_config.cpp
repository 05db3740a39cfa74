#include "pool/shard_config.hpp"

namespace pgvigil::pool {
namespace {

int share(int total, int shards, int index) { return total / shards + (index < total % shards); }

}  // namespace

PoolConfig shard_config(const PoolConfig& database, int index) {
  PoolConfig shard = database;
  const int shards = database.pool.shards;
  shard.pool.min_idle = share(database.pool.min_idle, shards, index);
  shard.pool.max_size = share(database.pool.max_size, shards, index);
  return shard;
}

}  // namespace pgvigil::pool
