// Graceful shutdown with clients connected, against a real PostgreSQL: on SIGTERM a transaction
// in flight completes, idle clients are told 57P01, new clients are refused, and pgvigil exits 0;
// a transaction still open at shutdown_timeout is cut off (57P01) and the exit code says so.
#include <gtest/gtest.h>
#include <signal.h>

#include <thread>

#include "tests/daemon/daemon_test_util.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/free_port.hpp"
#include "tests/support/pg_cluster.hpp"
#include "tests/support/wait_until.hpp"

namespace pgvigil::testing {
namespace {
using std::chrono::milliseconds;
using std::chrono::seconds;

struct Ports {
  std::uint16_t admin = free_tcp_port();
  std::uint16_t listen = free_tcp_port();
};

std::string config(const PgCluster& pg, const Ports& ports, const std::string& pool_mode,
                   const std::string& shutdown_timeout) {
  return "admin: {listen: \"127.0.0.1:" + std::to_string(ports.admin) + "\"}\n" +
         "listen: {address: \"127.0.0.1:" + std::to_string(ports.listen) + "\"}\n" +
         "shutdown_timeout: " + shutdown_timeout + "\n" +
         "pool: {min_idle: 1, max_size: 4}\n"
         "databases:\n"
         "  app:\n"
         "    host: 127.0.0.1\n"
         "    port: " + std::to_string(pg.port()) + "\n" +
         "    dbname: postgres\n"
         "    user: postgres\n"
         "    pool_mode: " + pool_mode + "\n" +
         "    application_name: pgvigil-drain\n";
}

// The SQLSTATE of the error a query got, or "" when it worked. After a FATAL, libpq's last
// result only says the connection closed, so the first result is the one to read.
std::string sqlstate_of(PGconn* conn, const std::string& sql) {
  if (PQsendQuery(conn, sql.c_str()) == 0) return "send failed";
  std::string state;
  bool first = true;
  while (PGresult* result = PQgetResult(conn)) {
    if (first && PQresultStatus(result) == PGRES_FATAL_ERROR) {
      const char* code = PQresultErrorField(result, PG_DIAG_SQLSTATE);
      state = code ? code : "no sqlstate";
    }
    first = false;
    PQclear(result);
  }
  return state;
}

// Records the SQLSTATE of errors the server sends outside any query (a FATAL to an idle
// client). Installed right after connecting: the FATAL may arrive in the same read as the
// answer to the previous query, and libpq reports it at once.
void capture_unsolicited_errors(PGconn* conn, std::string& sqlstate) {
  PQsetNoticeReceiver(
      conn,
      [](void* out, const PGresult* result) {
        if (const char* code = PQresultErrorField(result, PG_DIAG_SQLSTATE)) {
          *static_cast<std::string*>(out) = code;
        }
      },
      &sqlstate);
}

// Waits until an unsolicited error (or the close) arrived; returns its SQLSTATE.
std::string unsolicited_error(PGconn* conn, const std::string& sqlstate, milliseconds timeout) {
  wait_until(
      [&] {
        PQconsumeInput(conn);
        PQisBusy(conn);  // libpq parses what it read (and calls the receiver) only here
        return !sqlstate.empty() || PQstatus(conn) == CONNECTION_BAD;
      },
      timeout);
  return sqlstate;
}

class DrainPgTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    pg_ = PgCluster::start_new();
    pg_->execute("CREATE TABLE IF NOT EXISTS drained (id int)");
  }
  static void TearDownTestSuite() { pg_.reset(); }
  static std::unique_ptr<PgCluster> pg_;
};
std::unique_ptr<PgCluster> DrainPgTest::pg_;

TEST_F(DrainPgTest, TransactionInFlightCompletesIdleClientsAreToldAndTheExitIsClean) {
  for (const std::string mode : {"transaction", "session"}) {
    SCOPED_TRACE(mode);
    pg_->execute("TRUNCATE drained");
    Ports ports;
    auto daemon = DaemonProcess::start(PGVIGIL_BINARY, config(*pg_, ports, mode, "10s"));
    ASSERT_TRUE(daemon->wait_for_log("accepting PostgreSQL clients", seconds(10)))
        << daemon->log_text();
    auto busy = connect_client(ports.listen, "app");
    auto idle = connect_client(ports.listen, "app");
    ASSERT_EQ(PQstatus(busy.get()), CONNECTION_OK) << PQerrorMessage(busy.get());
    ASSERT_EQ(PQstatus(idle.get()), CONNECTION_OK) << PQerrorMessage(idle.get());
    std::string busy_error;
    std::string idle_error;
    capture_unsolicited_errors(busy.get(), busy_error);
    capture_unsolicited_errors(idle.get(), idle_error);
    ASSERT_EQ(run(busy.get(), "BEGIN"), "");
    ASSERT_EQ(run(busy.get(), "INSERT INTO drained VALUES (1)"), "");

    ASSERT_TRUE(daemon->send_signal(SIGTERM));
    // The idle client hears 57P01 at once; the one in a transaction is left alone.
    EXPECT_EQ(unsolicited_error(idle.get(), idle_error, seconds(3)), "57P01");
    ASSERT_TRUE(wait_until([&] { return daemon->log_text().find("draining") != std::string::npos; },
                           seconds(3)));
    EXPECT_EQ(run(busy.get(), "INSERT INTO drained VALUES (2)"), "");
    EXPECT_EQ(run(busy.get(), "COMMIT"), "");
    // New clients are refused while draining.
    auto late = connect_client(ports.listen, "app");
    EXPECT_NE(PQstatus(late.get()), CONNECTION_OK);
    // After its transaction the busy client is told too, and pgvigil exits cleanly.
    EXPECT_EQ(unsolicited_error(busy.get(), busy_error, seconds(3)), "57P01");
    EXPECT_EQ(daemon->wait_exit(seconds(10)), 0) << daemon->log_text();
    EXPECT_EQ(pg_->query_value("SELECT count(*) FROM drained"), "2");
    // Each backend ends when it reads pgvigil's Terminate, a moment after pgvigil has exited.
    EXPECT_TRUE(wait_until([&] { return pg_->backend_pids("pgvigil-drain").empty(); }, seconds(5)));
  }
}

TEST_F(DrainPgTest, TransactionStillOpenAtShutdownTimeoutIsCutOffAndRolledBack) {
  pg_->execute("TRUNCATE drained");
  Ports ports;
  auto daemon = DaemonProcess::start(PGVIGIL_BINARY, config(*pg_, ports, "transaction", "500ms"));
  ASSERT_TRUE(daemon->wait_for_log("accepting PostgreSQL clients", seconds(10)))
      << daemon->log_text();
  auto stuck = connect_client(ports.listen, "app");
  std::string stuck_error;
  capture_unsolicited_errors(stuck.get(), stuck_error);
  ASSERT_EQ(run(stuck.get(), "BEGIN"), "");
  ASSERT_EQ(run(stuck.get(), "INSERT INTO drained VALUES (3)"), "");
  const auto signalled = std::chrono::steady_clock::now();
  ASSERT_TRUE(daemon->send_signal(SIGTERM));
  EXPECT_EQ(unsolicited_error(stuck.get(), stuck_error, seconds(5)), "57P01");
  const auto waited = std::chrono::steady_clock::now() - signalled;
  EXPECT_GE(waited, milliseconds(450));
  EXPECT_LT(waited, seconds(4));
  // Exit code 1: a client was cut off mid-transaction. Its work never committed.
  EXPECT_EQ(daemon->wait_exit(seconds(10)), 1) << daemon->log_text();
  EXPECT_EQ(pg_->query_value("SELECT count(*) FROM drained"), "0");
  EXPECT_TRUE(wait_until([&] { return pg_->backend_pids("pgvigil-drain").empty(); }, seconds(5)));
}

}  // namespace
}  // namespace pgvigil::testing
