// Proves PgCluster does what the pg tests rely on, against a real PostgreSQL.

#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <memory>

#include "tests/support/pg_cluster.hpp"
#include "tests/support/wait_until.hpp"

namespace pgvigil::testing {
namespace {

using std::chrono::seconds;

struct ConnDeleter {
  void operator()(PGconn* conn) const { PQfinish(conn); }
};
using Conn = std::unique_ptr<PGconn, ConnDeleter>;

Conn connect(const std::string& conninfo) {
  Conn conn(PQconnectdb(conninfo.c_str()));
  EXPECT_EQ(PQstatus(conn.get()), CONNECTION_OK) << PQerrorMessage(conn.get());
  return conn;
}

bool query_ok(PGconn* conn, const char* sql) {
  PGresult* result = PQexec(conn, sql);
  const bool ok = PQresultStatus(result) == PGRES_TUPLES_OK;
  PQclear(result);
  return ok;
}

class PgClusterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { pg_ = PgCluster::start_new(); }
  static void TearDownTestSuite() { pg_.reset(); }
  // A test that failed half-way must not leave the next one with a stopped server.
  void SetUp() override { pg_->start(); }

  static std::unique_ptr<PgCluster> pg_;
};
std::unique_ptr<PgCluster> PgClusterTest::pg_;

TEST_F(PgClusterTest, ExecutesAndQueries) {
  pg_->execute(
      "CREATE TABLE IF NOT EXISTS t1 (v int); TRUNCATE t1; INSERT INTO t1 VALUES (1), (2)");
  EXPECT_EQ(pg_->query_column("SELECT v FROM t1 ORDER BY v"), (std::vector<std::string>{"1", "2"}));
  EXPECT_EQ(pg_->query_value("SELECT current_setting('fsync')"), "off");
  EXPECT_EQ(pg_->query_value("SHOW max_connections"), "50");
  EXPECT_THROW(pg_->execute("SELECT * FROM no_such_table"), std::runtime_error);
}

TEST_F(PgClusterTest, ListensOnLoopbackTcpAndOnItsOwnSocket) {
  EXPECT_EQ(pg_->host(), "127.0.0.1");
  EXPECT_GT(pg_->port(), 0);
  Conn conn = connect(pg_->conninfo());
  EXPECT_TRUE(query_ok(conn.get(), "SELECT 1"));
  struct stat info {};
  const auto socket = pg_->socket_dir() / (".s.PGSQL." + std::to_string(pg_->port()));
  ASSERT_EQ(::stat(socket.c_str(), &info), 0) << socket;
  EXPECT_TRUE(S_ISSOCK(info.st_mode));
  EXPECT_TRUE(std::filesystem::exists(pg_->data_dir() / "PG_VERSION"));
}

TEST_F(PgClusterTest, FindsAndTerminatesBackendsByApplicationName) {
  Conn conn = connect(pg_->conninfo() + " application_name=harness_victim");
  const auto pids = pg_->backend_pids("harness_victim");
  ASSERT_EQ(pids.size(), 1u);
  EXPECT_EQ(pids[0], PQbackendPID(conn.get()));

  const auto children = pg_->child_pids();
  ASSERT_FALSE(children.empty());
  EXPECT_EQ(children.front(), pg_->postmaster_pid());
  EXPECT_NE(std::find(children.begin(), children.end(), pids[0]), children.end());

  EXPECT_TRUE(pg_->terminate_backend(pids[0]));
  EXPECT_TRUE(pg_->backend_pids("harness_victim").empty());
  EXPECT_FALSE(query_ok(conn.get(), "SELECT 1"));
  EXPECT_FALSE(pg_->terminate_backend(pg_->postmaster_pid()));  // not a backend
}

TEST_F(PgClusterTest, StopsAndStartsKeepingData) {
  pg_->execute(
      "CREATE TABLE IF NOT EXISTS kept (v int); TRUNCATE kept; INSERT INTO kept VALUES (7)");
  const std::string ping = pg_->conninfo();
  pg_->stop();
  EXPECT_FALSE(pg_->running());
  EXPECT_EQ(pg_->postmaster_pid(), -1);
  EXPECT_EQ(PQping(ping.c_str()), PQPING_NO_RESPONSE);
  pg_->start();
  EXPECT_EQ(PQping(ping.c_str()), PQPING_OK);
  EXPECT_EQ(pg_->query_value("SELECT v FROM kept"), "7");
}

TEST_F(PgClusterTest, RestartImmediateBreaksConnectionsAndChangesPostmaster) {
  Conn conn = connect(pg_->conninfo());
  const pid_t before = pg_->postmaster_pid();
  const auto port = pg_->port();
  pg_->restart("immediate");
  EXPECT_EQ(pg_->port(), port);
  EXPECT_NE(pg_->postmaster_pid(), before);
  EXPECT_GT(pg_->postmaster_pid(), 0);
  EXPECT_FALSE(query_ok(conn.get(), "SELECT 1"));
  EXPECT_EQ(pg_->query_value("SELECT 1"), "1");
}

TEST_F(PgClusterTest, FailoverLikeResetIsADifferentServerOnTheSamePort) {
  pg_->execute("CREATE TABLE IF NOT EXISTS old_primary (v int)");
  const auto identifier = pg_->query_value("SELECT system_identifier FROM pg_control_system()");
  const auto port = pg_->port();
  pg_->reset_data_dir_like_failover();
  EXPECT_EQ(pg_->port(), port);
  EXPECT_NE(pg_->query_value("SELECT system_identifier FROM pg_control_system()"), identifier);
  EXPECT_EQ(pg_->query_value("SELECT count(*) FROM pg_tables WHERE tablename = 'old_primary'"),
            "0");
}

TEST(PgClusterOptionsTest, AppliesConfAndHbaLines) {
  PgCluster::Options options;
  options.max_connections = 7;
  options.conf_lines = {"password_encryption = 'scram-sha-256'"};
  options.hba_lines = {"host all scram_user 127.0.0.1/32 scram-sha-256"};
  auto pg = PgCluster::start_new(options);
  EXPECT_EQ(pg->query_value("SHOW max_connections"), "7");
  pg->execute("CREATE ROLE scram_user LOGIN PASSWORD 'secret'");

  Conn without(PQconnectdb((pg->conninfo("postgres", "scram_user") + " password=wrong").c_str()));
  EXPECT_NE(PQstatus(without.get()), CONNECTION_OK);
  Conn with = connect(pg->conninfo("postgres", "scram_user") + " password=secret");
  EXPECT_TRUE(query_ok(with.get(), "SELECT 1"));

  const auto data_dir = pg->data_dir();
  const pid_t postmaster = pg->postmaster_pid();
  pg.reset();
  EXPECT_FALSE(std::filesystem::exists(data_dir));
  EXPECT_TRUE(wait_until([&] { return ::kill(postmaster, 0) != 0; }, seconds(10)));
}

TEST(PgClusterOptionsTest, MissingBinariesGiveAClearError) {
  PgCluster::Options options;
  options.bin_dir = "/nonexistent";
  try {
    PgCluster::start_new(options);
    FAIL() << "expected an exception";
  } catch (const std::runtime_error& error) {
    EXPECT_NE(std::string(error.what()).find("/nonexistent"), std::string::npos);
  }
}

}  // namespace
}  // namespace pgvigil::testing
