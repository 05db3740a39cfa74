// The failover clock: from the first sign that the host in use is going to the first lending on
// the host the database moved to, and nothing timed for signs that came to nothing.

#include "pool/failover_clock.hpp"

#include <gtest/gtest.h>

namespace pgvigil::pool {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

class FailoverClockTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_FALSE(clock_.moved_to("db1:5432")); }
  FailoverClock clock_;
};

TEST_F(FailoverClockTest, TimesFromTheFirstSignToTheFirstLendingOnTheNewHost) {
  const auto now = Clock::now();
  clock_.sign_on("db1:5432", now - seconds(3));
  clock_.sign_on("db1:5432", now - seconds(5));  // an earlier one, reported later
  clock_.sign_on("db1:5432", now - seconds(1));
  EXPECT_FALSE(clock_.move_pending());
  ASSERT_TRUE(clock_.moved_to("db2:5432"));
  EXPECT_TRUE(clock_.move_pending());
  // A connection to the old host lent meanwhile stops nothing.
  EXPECT_FALSE(clock_.served_on("db1:5432"));
  const auto took = clock_.served_on("db2:5432");
  ASSERT_TRUE(took);
  EXPECT_GE(*took, seconds(5));
  EXPECT_LT(*took, seconds(6));
  EXPECT_FALSE(clock_.move_pending());
  EXPECT_FALSE(clock_.served_on("db2:5432"));  // once
}

TEST_F(FailoverClockTest, SignsOnAnotherHostThanTheOneInUseDoNotCount) {
  clock_.sign_on("db2:5432", Clock::now() - seconds(10));  // a standby of the list went away
  ASSERT_TRUE(clock_.moved_to("db2:5432"));
  // Counted as a move, but without a sign there is nothing to time.
  EXPECT_FALSE(clock_.move_pending());
  EXPECT_FALSE(clock_.served_on("db2:5432"));
}

TEST_F(FailoverClockTest, ReachingTheHostInUseAgainForgetsItsSigns) {
  clock_.sign_on("db1:5432", Clock::now() - seconds(60));  // a refused attempt, a blip
  EXPECT_FALSE(clock_.moved_to("db1:5432"));              // the next attempt worked
  clock_.sign_on("db1:5432", Clock::now() - milliseconds(100));
  ASSERT_TRUE(clock_.moved_to("db2:5432"));
  const auto took = clock_.served_on("db2:5432");
  ASSERT_TRUE(took);
  EXPECT_LT(*took, seconds(5));
}

TEST_F(FailoverClockTest, AServerThatAnswersAgainForgetsItsSigns) {
  clock_.sign_on_current(Clock::now() - seconds(60));
  clock_.server_answered();
  ASSERT_TRUE(clock_.moved_to("db2:5432"));
  EXPECT_FALSE(clock_.move_pending());
}

TEST_F(FailoverClockTest, APingAnsweredOnTheHostInUseForgetsItsSigns) {
  clock_.sign_on("db1:5432", Clock::now() - seconds(60));
  EXPECT_TRUE(clock_.has_sign());
  clock_.answered_on("db2:5432");  // another host's answer says nothing of db1
  EXPECT_TRUE(clock_.has_sign());
  clock_.answered_on("db1:5432");
  EXPECT_FALSE(clock_.has_sign());
  ASSERT_TRUE(clock_.moved_to("db2:5432"));
  EXPECT_FALSE(clock_.move_pending());
}

TEST_F(FailoverClockTest, AResetStartsOverWithoutAMove) {
  clock_.sign_on("db1:5432", Clock::now());
  clock_.reset();
  EXPECT_FALSE(clock_.moved_to("db3:5432"));  // the first host of a reloaded list
  EXPECT_FALSE(clock_.move_pending());
}

}  // namespace
}  // namespace pgvigil::pool
