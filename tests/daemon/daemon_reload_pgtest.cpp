// Hot reload on SIGHUP, against a real PostgreSQL: new keep-alive options reach the live server
// sockets (read back from the daemon's own sockets), an invalid file or a restart-only change
// leaves the old config serving, and databases come and go.

#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <set>

#include "tests/daemon/daemon_test_util.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/free_port.hpp"
#include "tests/support/pg_cluster.hpp"
#include "tests/support/wait_until.hpp"

namespace pgvigil::testing {
namespace {

using std::chrono::seconds;

struct Ports {
  std::uint16_t admin = free_tcp_port();
  std::uint16_t listen = free_tcp_port();
};

// keepalive is the body of the keepalive map; extra is appended (more databases).
std::string config(const PgCluster& pg, const Ports& ports, const std::string& keepalive,
                   const std::string& extra = "", const std::string& workers = "2") {
  return "workers: " + workers + "\n" +
         "admin: {listen: \"127.0.0.1:" + std::to_string(ports.admin) + "\"}\n" +
         "listen: {address: \"127.0.0.1:" + std::to_string(ports.listen) + "\"}\n" +
         "keepalive: {" + keepalive + "}\n" +
         "ping: {interval: 1s, timeout: 300ms, jitter: 0}\n"
         "pool: {min_idle: 2}\n"
         "databases:\n"
         "  app:\n"
         "    host: 127.0.0.1\n"
         "    port: " + std::to_string(pg.port()) + "\n" +
         "    dbname: postgres\n"
         "    user: postgres\n"
         "    sslmode: disable\n"
         "    application_name: pgvigil-reload\n" +
         extra;
}

std::string reports_database(const PgCluster& pg) {
  return "  reports:\n"
         "    host: 127.0.0.1\n"
         "    port: " + std::to_string(pg.port()) + "\n" +
         "    dbname: postgres\n"
         "    user: postgres\n"
         "    sslmode: disable\n"
         "    application_name: pgvigil-reports\n";
}

double reloads(const Ports& ports, const std::string& result) {
  return metric(ports.admin, "pgvigil_config_reloads_total", {{"result", result}}).value_or(0);
}

bool idle_is(const Ports& ports, const std::string& pool, double count) {
  return metric(ports.admin, "pgvigil_server_connections", {{"pool", pool}, {"state", "idle"}}) ==
         count;
}

class ReloadPgTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { pg_ = PgCluster::start_new(); }
  static void TearDownTestSuite() { pg_.reset(); }

  std::unique_ptr<DaemonProcess> start_warm(const std::string& config_yaml) {
    auto daemon = DaemonProcess::start(PGVIGIL_BINARY, config_yaml);
    EXPECT_TRUE(wait_until([&] { return idle_is(ports_, "app", 2); }, seconds(15)))
        << daemon->log_text();
    return daemon;
  }

  static std::unique_ptr<PgCluster> pg_;
  Ports ports_;
};

std::unique_ptr<PgCluster> ReloadPgTest::pg_;

TEST_F(ReloadPgTest, KeepaliveReachesLiveSocketsWithoutDroppingThem) {
  auto daemon =
      start_warm(config(*pg_, ports_, "idle: 5s, interval: 2s, count: 3, user_timeout: 11s"));
  // A client inside a transaction holds one server connection checked out.
  auto client = connect_client(ports_.listen, "app");
  ASSERT_EQ(PQstatus(client.get()), CONNECTION_OK) << PQerrorMessage(client.get());
  ASSERT_EQ(run(client.get(), "BEGIN"), "");
  ASSERT_EQ(run(client.get(), "SELECT 1"), "");
  ASSERT_TRUE(wait_until([&] { return idle_is(ports_, "app", 2); }, seconds(5)));

  const auto before = sockets_connected_to(daemon->pid(), pg_->port());
  ASSERT_EQ(before.size(), 3u) << "2 idle + 1 checked out";
  for (const auto& socket : before) {
    EXPECT_EQ(socket.idle_s, 5);
    EXPECT_EQ(socket.user_timeout_ms, 11000);
  }

  daemon->write_config(config(*pg_, ports_, "idle: 7s, interval: 3s, count: 4, user_timeout: 19s"));
  ASSERT_TRUE(daemon->send_signal(SIGHUP));
  ASSERT_TRUE(daemon->wait_for_log("config reloaded", seconds(5))) << daemon->log_text();
  EXPECT_EQ(reloads(ports_, "success"), 1.0);

  const auto after = sockets_connected_to(daemon->pid(), pg_->port());
  std::set<unsigned long long> before_inodes;
  for (const auto& socket : before) before_inodes.insert(socket.inode);
  ASSERT_EQ(after.size(), 3u);
  for (const auto& socket : after) {
    EXPECT_TRUE(before_inodes.contains(socket.inode)) << "a connection was replaced";
    EXPECT_EQ(socket.idle_s, 7);
    EXPECT_EQ(socket.interval_s, 3);
    EXPECT_EQ(socket.count, 4);
    EXPECT_EQ(socket.user_timeout_ms, 19000);
  }
  EXPECT_EQ(metric(ports_.admin, "pgvigil_keepalive_mismatches_total", {{"pool", "app"}})
                .value_or(0),
            0.0)
      << metrics_page(ports_.admin);
  EXPECT_NE(daemon->log_text().find("keepalive idle=7s interval=3s count=4 user_timeout=19000ms"),
            std::string::npos)
      << daemon->log_text();

  // The leased connection still works and goes back to the pool.
  EXPECT_EQ(run(client.get(), "COMMIT"), "");
  EXPECT_EQ(run(client.get(), "SELECT 1"), "");
  // Healthy connections are not evicted by a reload that keeps the server.
  EXPECT_EQ(daemon->log_text().find("reason=reload"), std::string::npos) << daemon->log_text();
}

TEST_F(ReloadPgTest, InvalidFileOrRestartOnlyChangeKeepsTheOldConfig) {
  auto daemon = start_warm(config(*pg_, ports_, "idle: 5s"));
  // Line 4, column 19: the value of keepalive.idle in the flow map "keepalive: {idle: 0s}".
  daemon->write_config(config(*pg_, ports_, "idle: 0s"));
  ASSERT_TRUE(daemon->send_signal(SIGHUP));
  ASSERT_TRUE(daemon->wait_for_log("rejected", seconds(5))) << daemon->log_text();
  const std::string expected = daemon->config_path().string() + ":4:19: keepalive.idle:";
  EXPECT_NE(daemon->log_text().find(expected), std::string::npos) << daemon->log_text();
  EXPECT_TRUE(wait_until([&] { return reloads(ports_, "error") == 1.0; }, seconds(2)));
  EXPECT_EQ(reloads(ports_, "success"), 0.0);

  auto client = connect_client(ports_.listen, "app");
  ASSERT_EQ(PQstatus(client.get()), CONNECTION_OK) << PQerrorMessage(client.get());
  EXPECT_EQ(run(client.get(), "SELECT 1"), "");
  EXPECT_EQ(sockets_connected_to(daemon->pid(), pg_->port()).front().idle_s, 5);

  // workers needs a restart: refused, naming the key at its position (line 1, column 10).
  daemon->write_config(config(*pg_, ports_, "idle: 6s", "", "3"));
  ASSERT_TRUE(daemon->send_signal(SIGHUP));
  ASSERT_TRUE(wait_until([&] { return reloads(ports_, "error") == 2.0; }, seconds(5)))
      << daemon->log_text();
  EXPECT_NE(daemon->log_text().find(daemon->config_path().string() + ":1:10: workers:"),
            std::string::npos)
      << daemon->log_text();
  EXPECT_EQ(sockets_connected_to(daemon->pid(), pg_->port()).front().idle_s, 5)
      << "nothing applied";
  EXPECT_EQ(run(client.get(), "SELECT 1"), "");
}

TEST_F(ReloadPgTest, DatabaseAddedThenRemoved) {
  auto daemon = start_warm(config(*pg_, ports_, "idle: 5s"));
  EXPECT_EQ(PQstatus(connect_client(ports_.listen, "reports").get()), CONNECTION_BAD);

  daemon->write_config(config(*pg_, ports_, "idle: 5s", reports_database(*pg_)));
  ASSERT_TRUE(daemon->send_signal(SIGHUP));
  ASSERT_TRUE(wait_until([&] { return idle_is(ports_, "reports", 2); }, seconds(10)))
      << daemon->log_text();
  EXPECT_NE(daemon->log_text().find("database reports added"), std::string::npos);
  {
    auto client = connect_client(ports_.listen, "reports");
    ASSERT_EQ(PQstatus(client.get()), CONNECTION_OK) << PQerrorMessage(client.get());
    EXPECT_EQ(run(client.get(), "SELECT 1"), "");
  }
  EXPECT_EQ(pg_->backend_pids("pgvigil-reports").size(), 2u);

  daemon->write_config(config(*pg_, ports_, "idle: 5s"));
  ASSERT_TRUE(daemon->send_signal(SIGHUP));
  ASSERT_TRUE(daemon->wait_for_log("pool reports: removed", seconds(10))) << daemon->log_text();
  // Each shard logs its own removal; the series go with the last one, which may come later.
  EXPECT_TRUE(wait_until(
      [&] {
        return !metric(ports_.admin, "pgvigil_server_connections",
                       {{"pool", "reports"}, {"state", "idle"}})
                    .has_value();
      },
      seconds(5)))
      << metrics_page(ports_.admin);
  // The removed pool drains on another worker, which may finish before the reload counts itself.
  EXPECT_TRUE(wait_until([&] { return reloads(ports_, "success") == 2.0; }, seconds(5)))
      << metrics_page(ports_.admin);
  EXPECT_TRUE(wait_until([&] { return pg_->backend_pids("pgvigil-reports").empty(); }, seconds(3)));
  const std::string log = daemon->log_text();
  EXPECT_NE(log.find("pool reports: evicted"), std::string::npos) << log;
  EXPECT_NE(log.find("reason=reload"), std::string::npos) << log;
  auto refused = connect_client(ports_.listen, "reports");
  EXPECT_EQ(PQstatus(refused.get()), CONNECTION_BAD);
  EXPECT_NE(std::string(PQerrorMessage(refused.get())).find("does not exist"), std::string::npos)
      << PQerrorMessage(refused.get());
  // app is untouched.
  auto client = connect_client(ports_.listen, "app");
  EXPECT_EQ(run(client.get(), "SELECT 1"), "");
}

TEST_F(ReloadPgTest, ShardCountChangeReplacesThePoolsAndKeepsTheGaugesTrue) {
  const auto with_shards = [&](int shards) {
    auto text = config(*pg_, ports_, "idle: 5s");
    const std::string pool_line = "pool: {min_idle: 2}\n";
    text.replace(text.find(pool_line), pool_line.size(),
                 "pool: {min_idle: 2, shards: " + std::to_string(shards) + "}\n");
    return text;
  };
  auto daemon = start_warm(with_shards(1));
  const auto before = pg_->backend_pids("pgvigil-reload");
  ASSERT_EQ(before.size(), 2u);

  daemon->write_config(with_shards(2));
  ASSERT_TRUE(daemon->send_signal(SIGHUP));
  ASSERT_TRUE(daemon->wait_for_log("pool.shards 1 -> 2", seconds(10))) << daemon->log_text();
  // The old pool drains and closes; the two shards open one idle connection each.
  ASSERT_TRUE(wait_until([&] {
    const auto now = pg_->backend_pids("pgvigil-reload");
    return now.size() == 2 && std::none_of(now.begin(), now.end(), [&](pid_t pid) {
      return std::find(before.begin(), before.end(), pid) != before.end();
    });
  }, seconds(10))) << daemon->log_text();
  EXPECT_TRUE(wait_until([&] { return idle_is(ports_, "app", 2); }, seconds(5)))
      << metrics_page(ports_.admin);
  EXPECT_EQ(metric(ports_.admin, "pgvigil_server_connections", {{"pool", "app"}, {"state", "closing"}})
                .value_or(-1), 0);
  EXPECT_EQ(reloads(ports_, "success"), 1.0);
  auto client = connect_client(ports_.listen, "app");
  ASSERT_EQ(PQstatus(client.get()), CONNECTION_OK) << PQerrorMessage(client.get());
  EXPECT_EQ(run(client.get(), "SELECT 1"), "");
}

TEST_F(ReloadPgTest, WatchedFileChangeOfServerDrainsOldConnections) {
  auto daemon = start_warm(config(*pg_, ports_, "idle: 5s") + "reload: {watch_file: true}\n");
  ASSERT_EQ(pg_->backend_pids("pgvigil-reload").size(), 2u);
  auto text = config(*pg_, ports_, "idle: 5s") + "reload: {watch_file: true}\n";
  text.replace(text.find("application_name: pgvigil-reload"),
               std::string("application_name: pgvigil-reload").size(),
               "application_name: pgvigil-moved");
  daemon->write_config(text);  // no SIGHUP: the watcher notices within a second or two
  ASSERT_TRUE(daemon->wait_for_log("config reloaded (file change)", seconds(5)))
      << daemon->log_text();
  EXPECT_TRUE(wait_until(
      [&] {
        return pg_->backend_pids("pgvigil-reload").empty() &&
               pg_->backend_pids("pgvigil-moved").size() == 2;
      },
      seconds(5)))
      << daemon->log_text();
  EXPECT_EQ(metric(ports_.admin, "pgvigil_evictions_total", {{"pool", "app"}, {"reason", "reload"}}),
            2.0);
  auto client = connect_client(ports_.listen, "app");
  EXPECT_EQ(run(client.get(), "SELECT 1"), "");
}

}  // namespace
}  // namespace pgvigil::testing
