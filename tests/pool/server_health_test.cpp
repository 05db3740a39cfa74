// ServerHealth: the verdict about a server from its pools' reports, with pools that record
// what they are asked, and the metrics of a real Registry.

#include "pool/server_health.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "tests/support/contains.hpp"

namespace pgvigil::pool {
namespace {

// A pool as the health sees it: records each request.
struct RecordingPool final : HealthListener {
  std::vector<std::uint64_t> rounds;
  std::vector<Death> deaths;
  void probe_server(std::uint64_t round) override { rounds.push_back(round); }
  void server_down(const Death& death) override { deaths.push_back(death); }
};

using testing::contains;

class ServerHealthTest : public ::testing::Test {
 protected:
  ServerHealthTest()
      : metrics_(registry_.add_pool("app", {})),
        health_("app", "db1:5432/app as app", metrics_) {
    for (auto& pool : pools_) health_.join(pool);
  }

  std::string page() const { return registry_.serialize(); }
  std::string series(const std::string& name, const std::string& extra = "") const {
    return name + "{pool=\"app\",server=\"db1:5432/app as app\"" + extra + "}";
  }

  metrics::Registry registry_{"test"};
  std::shared_ptr<metrics::PoolMetrics> metrics_;
  std::vector<std::shared_ptr<RecordingPool>> pools_{std::make_shared<RecordingPool>(),
                                                     std::make_shared<RecordingPool>()};
  ServerHealth health_;
};

TEST_F(ServerHealthTest, StartsHealthyWithItsSeriesAtZero) {
  EXPECT_EQ(health_.state(), HealthState::healthy);
  EXPECT_EQ(health_.verdict(), "");
  const auto text = page();
  EXPECT_TRUE(contains(text, series("pgvigil_server_health") + " 0\n")) << text;
  EXPECT_TRUE(contains(text, series("pgvigil_server_verdicts_total", ",verdict=\"down\"") + " 0\n"))
      << text;
}

TEST_F(ServerHealthTest, ASignOfTroubleAsksEveryPoolOnceAndAnAnswerClearsIt) {
  health_.sign_of_trouble("ping_timeout on connection 3", Clock::now());
  EXPECT_EQ(health_.state(), HealthState::suspect);
  EXPECT_TRUE(contains(page(), series("pgvigil_server_health") + " 1\n"));
  // Further signs while suspect start no new round.
  health_.sign_of_trouble("ping_timeout on connection 4", Clock::now());
  for (const auto& pool : pools_) EXPECT_EQ(pool->rounds, std::vector<std::uint64_t>{1});
  EXPECT_NE(health_.verdict().find("ping_timeout on connection 3"), std::string::npos);

  health_.answered();
  EXPECT_EQ(health_.state(), HealthState::healthy);
  const auto text = page();
  EXPECT_TRUE(contains(text, series("pgvigil_server_health") + " 0\n")) << text;
  EXPECT_TRUE(contains(text, series("pgvigil_server_verdicts_total", ",verdict=\"suspect\"") +
                                 " 1\n"))
      << text;
  EXPECT_TRUE(contains(text, series("pgvigil_server_verdicts_total", ",verdict=\"healthy\"") +
                                 " 1\n"))
      << text;
  for (const auto& pool : pools_) EXPECT_TRUE(pool->deaths.empty());
}

TEST_F(ServerHealthTest, DownOnlyWhenEveryPoolAskedFoundNoAnswer) {
  const auto first_seen = Clock::now() - std::chrono::seconds(2);
  health_.sign_of_trouble("a request on connection 7 unanswered for 5.0 s", first_seen);
  health_.probe_unanswered(1);
  EXPECT_EQ(health_.state(), HealthState::suspect) << "one pool of two has not reported";
  health_.probe_unanswered(1);
  EXPECT_EQ(health_.state(), HealthState::down);
  for (const auto& pool : pools_) {
    ASSERT_EQ(pool->deaths.size(), 1u);
    const auto& death = pool->deaths.front();
    EXPECT_EQ(death.reason, EvictionReason::server_down);
    EXPECT_EQ(death.last_sign_of_life, first_seen);
    EXPECT_NE(death.detail.find("connection 7 unanswered"), std::string::npos) << death.detail;
  }
  EXPECT_NE(health_.verdict().find("is down"), std::string::npos) << health_.verdict();
  const auto text = page();
  EXPECT_TRUE(contains(text, series("pgvigil_server_health") + " 2\n")) << text;
  EXPECT_TRUE(contains(text, series("pgvigil_server_down_verdict_seconds_count") + " 1\n"))
      << text;
  // The time from the first sign: at least the 2 s it was backdated, so the 2 s bucket is 0.
  EXPECT_TRUE(contains(text, series("pgvigil_server_down_verdict_seconds_bucket", ",le=\"2\"") +
                                 " 0\n"))
      << text;

  // While down, signs change nothing; an answer (a connection made) ends the verdict.
  health_.sign_of_trouble("ping_timeout on connection 8", Clock::now());
  EXPECT_EQ(pools_.front()->rounds.size(), 1u);
  health_.answered();
  EXPECT_EQ(health_.state(), HealthState::healthy);
}

TEST_F(ServerHealthTest, AnAnswerBeforeTheLastReportKeepsItHealthyAndOldRoundsCountForNothing) {
  health_.sign_of_trouble("keepalive_timeout on connection 1", Clock::now());
  health_.probe_unanswered(1);
  health_.answered();  // the other pool's ping came back
  health_.probe_unanswered(1);
  EXPECT_EQ(health_.state(), HealthState::healthy);

  health_.sign_of_trouble("user_timeout on connection 2", Clock::now());
  health_.probe_unanswered(1);  // late reports of the first round
  health_.probe_unanswered(1);
  EXPECT_EQ(health_.state(), HealthState::suspect);
  health_.probe_unanswered(2);
  health_.probe_unanswered(2);
  EXPECT_EQ(health_.state(), HealthState::down);
}

TEST_F(ServerHealthTest, APoolThatIsGoneIsNotWaitedFor) {
  pools_.pop_back();
  health_.sign_of_trouble("ping_timeout on connection 1", Clock::now());
  health_.probe_unanswered(1);
  EXPECT_EQ(health_.state(), HealthState::down);
}

TEST_F(ServerHealthTest, ARenamedServerIsHealthyUnderItsNewName) {
  health_.sign_of_trouble("ping_timeout on connection 1", Clock::now());
  health_.rename("db2:5432/app as app");
  EXPECT_EQ(health_.state(), HealthState::healthy);
  health_.probe_unanswered(1);  // about the old server
  health_.probe_unanswered(1);
  EXPECT_EQ(health_.state(), HealthState::healthy);
  const auto text = page();
  EXPECT_FALSE(contains(text, "server=\"db1:5432/app as app\"")) << text;
  EXPECT_TRUE(contains(text, "pgvigil_server_health{pool=\"app\",server=\"db2:5432/app as app\"} 0"))
      << text;
}

TEST_F(ServerHealthTest, AMoveToAnotherHostIsAFailoverButNotTheFirstHostOrAReload) {
  EXPECT_FALSE(health_.failover().moved_to("db1:5432"));  // the first host the database reaches
  EXPECT_FALSE(health_.failover().moved_to("db1:5432"));
  EXPECT_TRUE(health_.failover().moved_to("db2:5432"));
  health_.rename("db3:5432/app as app");       // a reload pointed it elsewhere
  EXPECT_FALSE(health_.failover().moved_to("db3:5432"));
}

TEST_F(ServerHealthTest, TurningSuspectStartsTheFailoverClock) {
  auto& clock = health_.failover();
  clock.moved_to("db1:5432");
  const auto first_seen = Clock::now() - std::chrono::seconds(2);
  health_.sign_of_trouble("ping_timeout on connection 1", first_seen);
  ASSERT_TRUE(clock.moved_to("db2:5432"));
  const auto took = clock.served_on("db2:5432");
  ASSERT_TRUE(took);
  EXPECT_GE(*took, std::chrono::seconds(2));
}

}  // namespace
}  // namespace pgvigil::pool
