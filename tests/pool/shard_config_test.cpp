#include "pool/shard_config.hpp"

#include <gtest/gtest.h>

#include <tuple>

namespace pgvigil::pool {
namespace {

PoolConfig database(int min_idle, int max_size, int shards) {
  PoolConfig config;
  config.name = "app";
  config.pool.min_idle = min_idle;
  config.pool.max_size = max_size;
  config.pool.shards = shards;
  return config;
}

TEST(ShardConfig, SharesAddUpToTheTotalsAndDifferByAtMostOne) {
  for (const auto& [min_idle, max_size, shards] :
       {std::tuple{20, 20, 2}, std::tuple{2, 10, 4}, std::tuple{0, 7, 3}, std::tuple{5, 5, 5},
        std::tuple{3, 11, 1}}) {
    const auto whole = database(min_idle, max_size, shards);
    int min_idle_sum = 0;
    int max_size_sum = 0;
    for (int index = 0; index < shards; ++index) {
      const auto shard = shard_config(whole, index);
      EXPECT_GE(shard.pool.max_size, 1) << "shard " << index << " of " << shards;
      EXPECT_LE(shard.pool.min_idle, shard.pool.max_size);
      EXPECT_LE(max_size / shards, shard.pool.max_size);
      EXPECT_LE(shard.pool.max_size, max_size / shards + 1);
      min_idle_sum += shard.pool.min_idle;
      max_size_sum += shard.pool.max_size;
    }
    EXPECT_EQ(min_idle_sum, min_idle) << min_idle << "/" << max_size << " over " << shards;
    EXPECT_EQ(max_size_sum, max_size) << min_idle << "/" << max_size << " over " << shards;
  }
}

TEST(ShardConfig, EverythingButTheSizesIsTheDatabases) {
  auto whole = database(3, 9, 2);
  whole.server.hosts = {{"db.internal", 5432}};
  whole.pool.checkout_timeout = Milliseconds{1234};
  const auto shard = shard_config(whole, 1);
  EXPECT_EQ(shard.name, "app");  // shards share the database's name and metric series
  EXPECT_EQ(shard.server.hosts.at(0).host, "db.internal");
  EXPECT_EQ(shard.pool.checkout_timeout, Milliseconds{1234});
  EXPECT_EQ(shard.pool.max_size, 4);  // 9 = 5 + 4: the lower shard takes the remainder
  EXPECT_EQ(shard.pool.min_idle, 1);  // 3 = 2 + 1
}

}  // namespace
}  // namespace pgvigil::pool
