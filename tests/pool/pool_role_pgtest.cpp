// The pool's view of a server's role against a real primary and streaming standby, where the
// server does not report its role: a server before PostgreSQL 14 sends no in_hot_standby, so the
// periodic ping must ask pg_is_in_recovery() itself. Debian 12 has only PostgreSQL 15, which
// always reports it, so the connection is told to ignore the reports
// (ServerConnection::ignore_role_reports) and only the ping's question can find the promotion.

#include <gtest/gtest.h>

#include <algorithm>

#include "tests/pool/pool_fixture.hpp"
#include "tests/support/wait_until.hpp"

namespace pgvigil::pool {
namespace {

using namespace std::chrono_literals;
using testing::PgCluster;
using testing::wait_until;

class PoolRolePgTest : public PoolFixture {
 protected:
  void SetUp() override {
    PoolFixture::SetUp();
    standby_ = PgCluster::start_standby_of(*shared_server_);
  }
  void TearDown() override {
    PoolFixture::TearDown();
    standby_.reset();
  }

  double pings() const {
    return metric(
        "pgvigil_ping_latency_seconds_count",
        {{"pool", "app"}, {"server", standby_->host() + ":" + std::to_string(standby_->port())}});
  }

  std::unique_ptr<PgCluster> standby_;
};

TEST_F(PoolRolePgTest, APingAsksTheRoleOfAServerThatDoesNotReportItAndFindsAPromotion) {
  auto config = fast_config(*standby_);
  config.server.target_session_attrs = TargetSessionAttrs::standby;
  config.pool.min_idle = 1;
  config.pool.max_size = 1;  // the one connection, made deaf to role reports below
  config.ping.interval = Milliseconds(200);
  config.ping.timeout = Milliseconds(2000);
  start_pool(config);

  auto result = checkout(5000ms);
  ASSERT_TRUE(std::holds_alternative<Lease>(result)) << std::get<CheckoutError>(result).detail;
  auto lease = std::get<Lease>(std::move(result));
  ASSERT_EQ(lease->role().role, ServerRole::standby);
  lease->ignore_role_reports();
  const auto pid = lease->backend_pid();
  pool_->give_back(lease, std::nullopt);
  lease.reset();

  // While the server is still a standby, the ping's question keeps the connection.
  const double pings_before = pings();
  ASSERT_TRUE(wait_until([&] { return pings() >= pings_before + 3; }, 5s));
  EXPECT_EQ(evictions("role_changed"), 0);
  EXPECT_EQ(evictions("ping_failed"), 0);

  standby_->promote();
  // Nothing else can tell this connection: its in_hot_standby report is ignored, so the eviction
  // is the ping's question answering that the server is now a primary.
  ASSERT_TRUE(wait_until([&] { return evictions("role_changed") == 1; }, 5s));
  EXPECT_EQ(evictions("ping_failed"), 0);
  EXPECT_TRUE(wait_until(
      [&] {
        auto pids = standby_->backend_pids(application_name_);
        return std::find(pids.begin(), pids.end(), pid) == pids.end();
      },
      3s));
  // The only listed server is a primary now: a standby pool lends nothing.
  const auto refused = checkout(500ms);
  EXPECT_TRUE(std::holds_alternative<CheckoutError>(refused));
}

}  // namespace
}  // namespace pgvigil::pool
