// Read traffic on standbys: a pool with target_session_attrs standby and several standbys
// spreads its connections over them (least connections), and takes out a standby whose replay
// lags past pool.max_replication_lag until it catches up. Against a real primary and two
// streaming standbys, one of them paused in replay (pg_wal_replay_pause()).

#include <gtest/gtest.h>

#include "tests/daemon/failover_fixture.hpp"
#include "tests/metrics/http_client.hpp"

namespace pgvigil::testing {
namespace {

class StandbyPgTest : public FailoverPgTest {
 protected:
  void SetUp() override {
    FailoverPgTest::SetUp();
    if (HasFatalFailure()) return;
    second_ = PgCluster::start_standby_of(*primary_);
    ASSERT_TRUE(caught_up(*second_));
  }

  std::size_t backends(const PgCluster& server) const {
    return server.backend_pids("pgvigil-failover").size();
  }


  std::unique_ptr<PgCluster> second_;
};

TEST_F(StandbyPgTest, StandbysShareTheConnectionsAndALaggingOneIsTakenOutUntilItCatchesUp) {
  auto daemon = start(host_entry(*standby_) + ", " + host_entry(*second_), "standby", "10s",
                      "max_replication_lag: 1s, ");
  // min_idle 2: one on each standby, not both on the first of the list.
  EXPECT_EQ(backends(*standby_), 1u) << daemon->log_text();
  EXPECT_EQ(backends(*second_), 1u) << daemon->log_text();
  EXPECT_EQ(server_role(ports_, *standby_, "standby"), 1);
  EXPECT_EQ(server_role(ports_, *second_, "standby"), 1);
  const auto ready = test::http_get("127.0.0.1", ports_.admin, "/readyz").body;
  // Each shard names the server its connection reaches.
  EXPECT_NE(ready.find("127.0.0.1:" + std::to_string(standby_->port()) + " (standby"),
            std::string::npos)
      << ready;
  EXPECT_NE(ready.find("127.0.0.1:" + std::to_string(second_->port()) + " (standby"),
            std::string::npos)
      << ready;

  // The first standby stops replaying while the primary goes on writing: its replay lag (the
  // age of its last replayed transaction) passes 1 s. Its connection goes at its next ping,
  // and the one that replaces it is not opened there.
  // (A standby measures its lag from the last transaction it replayed: it has replayed one.)
  primary_->execute("INSERT INTO writes (note) VALUES ('replayed')");
  ASSERT_TRUE(caught_up(*standby_));
  standby_->execute("SELECT pg_wal_replay_pause()");
  primary_->execute("INSERT INTO writes (note) VALUES ('not replayed yet')");
  ASSERT_TRUE(wait_until(
      [&] {
        return evictions(ports_, "replication_lag") >= 1 && backends(*standby_) == 0 &&
               backends(*second_) == 2;
      },
      seconds(20)))
      << "evictions(replication_lag)=" << evictions(ports_, "replication_lag")
      << " backends=" << backends(*standby_) << "/" << backends(*second_) << "\n"
      << daemon->log_text();
  for (int i = 0; i < 5; ++i) {
    auto reader = client();
    EXPECT_EQ(value_through(reader.get(), "SELECT inet_server_port()"),
              std::to_string(second_->port()));
  }
  // Spreading over standbys is no failover.
  EXPECT_EQ(metric(ports_.admin, "pgvigil_failovers_total", {{"pool", "app"}}), 0);

  // Replay resumes and the standby catches up: the next connection the pool needs goes there
  // (it has the fewest).
  standby_->execute("SELECT pg_wal_replay_resume()");
  ASSERT_TRUE(caught_up(*standby_));
  std::vector<Client> holders;
  for (int i = 0; i < 3; ++i) {
    holders.push_back(client());
    ASSERT_EQ(value_through(holders.back().get(), "BEGIN"), "");
    ASSERT_EQ(value_through(holders.back().get(), "SELECT 1"), "1");
  }
  EXPECT_TRUE(wait_until([&] { return backends(*standby_) >= 1; }, seconds(20)))
      << daemon->log_text();
  bool served_by_first = false;
  for (const auto& holder : holders) {
    served_by_first = served_by_first || value_through(holder.get(), "SELECT inet_server_port()") ==
                                             std::to_string(standby_->port());
  }
  EXPECT_TRUE(served_by_first) << daemon->log_text();
  EXPECT_EQ(standby_->query_value("SELECT count(*) FROM writes WHERE note = 'not replayed yet'"),
            "1");
}

}  // namespace
}  // namespace pgvigil::testing
