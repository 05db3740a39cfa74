#include "pool/eviction_reason.hpp"

#include <gtest/gtest.h>

#include <set>

namespace pgvigil::pool {
namespace {

TEST(EvictionReason, VocabularyIsTheOneInTheDesign) {
  std::set<std::string_view> names;
  for (auto reason : kAllEvictionReasons) names.insert(to_string(reason));
  const std::set<std::string_view> design = {
      "server_closed", "server_error", "keepalive_timeout", "user_timeout",
      "ping_timeout",  "ping_failed",  "statement_timeout", "checkout_check_failed", "max_lifetime",
      "idle_timeout",  "dirty_return", "query_timeout", "server_down", "role_changed", "replication_lag", "paused", "rebalanced", "reload", "shutdown"};
  EXPECT_EQ(names, design);
}

TEST(EvictionReason, PlannedClosesAreNotDeaths) {
  EXPECT_TRUE(is_death(EvictionReason::keepalive_timeout));
  EXPECT_TRUE(is_death(EvictionReason::ping_timeout));
  // A query whose cancel went unanswered: the server was found unresponsive.
  EXPECT_TRUE(is_death(EvictionReason::query_timeout));
  EXPECT_TRUE(is_death(EvictionReason::server_down));
  EXPECT_FALSE(is_death(EvictionReason::max_lifetime));
  EXPECT_FALSE(is_death(EvictionReason::shutdown));
  EXPECT_FALSE(is_death(EvictionReason::paused));
}

}  // namespace
}  // namespace pgvigil::pool
