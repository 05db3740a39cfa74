// CheckoutWaitTally: waits counted on the pool's thread land in the histogram's buckets as
// Histogram::Observe would have placed them, once published, and are published once.

#include "pool/checkout_wait_tally.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "metrics/buckets.hpp"
#include "metrics/registry.hpp"
#include "tests/support/contains.hpp"

namespace pgvigil::pool {
namespace {

using namespace std::chrono_literals;

using testing::contains;

std::string bucket(const char* le, int count) {
  return std::string("pgvigil_checkout_wait_seconds_bucket{pool=\"app\",le=\"") + le + "\"} " +
         std::to_string(count) + "\n";
}

TEST(CheckoutWaitTally, PublishedWaitsLandInTheirBucketsOnce) {
  metrics::Registry registry("test");
  const auto metrics = registry.add_pool("app", {});
  CheckoutWaitTally tally;
  // An instant checkout is counted in the first bucket without a search: right while every
  // bound is above zero.
  ASSERT_GT(metrics::buckets::kCheckoutWait.front(), 0.0);
  tally.add(0s);    // an instant checkout
  tally.add(-1ms);  // a clock step backwards counts as instant, and adds nothing to the sum
  tally.add(1ms);   // exactly on a bound: that bucket, as Observe places it
  tally.add(40ms);
  tally.add(45s);  // beyond the last bound: +Inf only

  EXPECT_TRUE(
      contains(registry.serialize(), "pgvigil_checkout_wait_seconds_count{pool=\"app\"} 0\n"))
      << "nothing reaches the histogram before publish_to";
  tally.publish_to(*metrics);
  tally.publish_to(*metrics);  // nothing new: adds nothing

  const auto page = registry.serialize();
  for (const auto& series : {
           bucket("0.0001", 2),
           bucket("0.0005", 2),
           bucket("0.001", 3),
           bucket("0.025", 3),
           bucket("0.05", 4),
           bucket("30", 4),
           bucket("+Inf", 5),
           std::string("pgvigil_checkout_wait_seconds_count{pool=\"app\"} 5\n"),
           std::string("pgvigil_checkout_wait_seconds_sum{pool=\"app\"} 45.041\n"),
       }) {
    EXPECT_TRUE(contains(page, series)) << series << "\n" << page;
  }
}

}  // namespace
}  // namespace pgvigil::pool
