// Real clients through the real pgvigil binary at the edges: pooled connections that die,
// clients that die inside a transaction, and pool.shards. The limits are in
// clients_limits_pgtest.cpp, the everyday client paths in clients_pgtest.cpp; all share the
// fixture of proxy_pg_fixture.hpp.

#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <signal.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <string>
#include <vector>

#include "tests/metrics/http_client.hpp"
#include "tests/proxy/pq_client.hpp"
#include "tests/proxy/proxy_pg_fixture.hpp"
#include "tests/support/admin_metrics.hpp"
#include "tests/support/prometheus_text.hpp"
#include "tests/support/subprocess.hpp"
#include "tests/support/wait_until.hpp"

namespace pgvigil::testing {
namespace {

class ClientsPgTest : public ProxyPgFixture {};

// --- dead pooled connections ---------------------------------------------------------------

TEST_F(ClientsPgTest, TerminatedIdleBackendsAreNeverHandedOut) {
  pg_->execute("DROP TABLE IF EXISTS survivors; CREATE TABLE survivors (id int)");
  start_daemon({.databases = {{.name = "tx", .pool = "{min_idle: 2, max_size: 4}"},
                              {.name = "sess", .pool_mode = "session", .pool = "{min_idle: 2}"}}});
  auto early = pq_connect(conninfo("tx"));  // connected before the kill, holds no server
  ASSERT_TRUE(pq_ok(early)) << PQerrorMessage(early.get());
  ASSERT_EQ(pq_value(early, "SELECT 'warm'"), "warm");
  ASSERT_TRUE(wait_until([&] { return daemon_backends().size() >= 4; }, seconds(10)));

  for (int round = 0; round < 2; ++round) {
    for (const pid_t pid : daemon_backends()) EXPECT_TRUE(pg_->terminate_backend(pid)) << pid;
    std::vector<PgConn> clients;
    clients.push_back(pq_connect(conninfo("sess")));
    clients.push_back(pq_connect(conninfo("tx")));
    for (int i = 0; i < 3; ++i) {
      const auto& conn = i == 0 ? early : clients[i - 1];
      ASSERT_TRUE(pq_ok(conn)) << PQerrorMessage(conn.get());
      const std::string id = std::to_string(round * 10 + i);
      EXPECT_EQ(pq_run(conn, "BEGIN"), "") << "round " << round << " client " << i;
      EXPECT_EQ(pq_run(conn, "INSERT INTO survivors VALUES (" + id + ")"), "");
      EXPECT_EQ(pq_value(conn, "SELECT count(*) FROM survivors WHERE id = " + id), "1");
      EXPECT_EQ(pq_run(conn, "COMMIT"), "");
    }
  }
  EXPECT_EQ(pg_->query_value("SELECT count(*) FROM survivors"), "6");
  // The last round's dead connections are evicted when pgvigil notices them, not necessarily
  // before the clients are done.
  EXPECT_TRUE(wait_until([&] { return metric("pgvigil_evictions_total", {}) >= 4; }, seconds(5)))
      << metrics_page();
  pg_->execute("DROP TABLE survivors");
}

// --- a client dying inside a transaction ---------------------------------------------------

TEST_F(ClientsPgTest, ClientKilledMidTransactionLeavesNothingBehind) {
  pg_->execute("DROP TABLE IF EXISTS dirty_rows; CREATE TABLE dirty_rows (x int)");
  start_daemon({.databases = {{.name = "tx", .pool = "{max_size: 1, min_idle: 1}"}}});
  const Labels dirty{{"pool", "tx"}, {"reason", "dirty_return"}};
  const double dirty_before = metric("pgvigil_evictions_total", dirty);

  auto dying = pq_connect(conninfo("tx"));
  ASSERT_TRUE(pq_ok(dying)) << PQerrorMessage(dying.get());
  ASSERT_EQ(pq_run(dying, "BEGIN"), "");
  ASSERT_EQ(pq_value(dying, "SELECT pg_advisory_lock(42)"), "");
  ASSERT_EQ(pq_run(dying, "CREATE TEMP TABLE dying_tmp (x int)"), "");
  ASSERT_EQ(pq_run(dying, "INSERT INTO dirty_rows VALUES (1)"), "");
  const auto dying_backend = pq_value(dying, "SELECT pg_backend_pid()").value_or("0");
  ASSERT_EQ(pg_->query_value("SELECT state FROM pg_stat_activity WHERE pid = " + dying_backend),
            "idle in transaction");

  // The client's socket goes away without a Terminate message.
  ASSERT_EQ(::shutdown(PQsocket(dying.get()), SHUT_RDWR), 0);
  EXPECT_TRUE(wait_until(
      [&] { return metric("pgvigil_evictions_total", dirty) >= dirty_before + 1; }, seconds(5)))
      << metric("pgvigil_evictions_total", dirty);
  EXPECT_TRUE(wait_until(
      [&] {
        return pg_->query_value("SELECT count(*) FROM pg_stat_activity WHERE pid = " +
                                dying_backend) == "0";
      },
      seconds(5)))
      << "the dirty backend still exists";
  EXPECT_EQ(pg_->query_value("SELECT count(*) FROM pg_stat_activity WHERE application_name = '" +
                             app_name_ + "' AND state LIKE 'idle in transaction%'"),
            "0");
  EXPECT_EQ(pg_->query_value("SELECT count(*) FROM dirty_rows"), "0");

  auto next = pq_connect(conninfo("tx"));
  ASSERT_TRUE(pq_ok(next)) << PQerrorMessage(next.get());
  EXPECT_EQ(PQtransactionStatus(next.get()), PQTRANS_IDLE);
  EXPECT_NE(pq_value(next, "SELECT pg_backend_pid()"), dying_backend);
  EXPECT_EQ(pq_value(next, "SELECT pg_try_advisory_lock(42)"), "t");
  EXPECT_EQ(pq_value(next, "SELECT pg_advisory_unlock(42)"), "t");
  EXPECT_EQ(pq_value(next, "SELECT to_regclass('dying_tmp') IS NULL"), "t");
  EXPECT_EQ(pq_value(next, "SELECT count(*) FROM dirty_rows"), "0");
  EXPECT_EQ(pq_value(next, "SELECT now() = statement_timestamp()"), "t")
      << "the statement ran inside someone else's transaction";
  EXPECT_TRUE(wait_until(
      [&] { return metric("pgvigil_client_connections", {{"pool", "tx"}}) == 1; }, seconds(2)));
  pg_->execute("DROP TABLE dirty_rows");
}

TEST_F(ClientsPgTest, PsqlKilledInsideATransactionIsEvictedDirty) {
  pg_->execute("DROP TABLE IF EXISTS psql_dirty; CREATE TABLE psql_dirty (x int)");
  start_daemon({.databases = {{.name = "tx", .pool = "{max_size: 1, min_idle: 1}"}}});
  const Labels dirty{{"pool", "tx"}, {"reason", "dirty_return"}};
  const double dirty_before = metric("pgvigil_evictions_total", dirty);
  write_file(work_->path() / "inside.sql", "BEGIN;\nINSERT INTO psql_dirty VALUES (7);\n");
  // psql keeps reading its script from the pipe, so it stays connected inside the transaction.
  const pid_t psql_pid = spawn_process(
      {"/bin/sh", "-c", "(cat inside.sql; sleep 60) | PGAPPNAME=dying-psql " + psql("tx")},
      work_->path() / "psql.log", work_->path());
  // pgvigil applies psql's application_name to the server connection it runs on.
  const std::string in_transaction =
      "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'dying-psql' AND "
      "state = 'idle in transaction'";
  const bool inside = wait_until([&] { return pg_->query_value(in_transaction) == "1"; }, seconds(5));
  ::kill(-psql_pid, SIGKILL);  // the whole pipeline: psql dies without a goodbye
  EXPECT_TRUE(wait_until([&] { return try_reap(psql_pid).has_value(); }, seconds(5)));
  ASSERT_TRUE(inside) << read_file(work_->path() / "psql.log");

  EXPECT_TRUE(wait_until(
      [&] { return metric("pgvigil_evictions_total", dirty) >= dirty_before + 1; }, seconds(5)));
  EXPECT_TRUE(wait_until([&] { return pg_->query_value(in_transaction) == "0"; }, seconds(5)));
  EXPECT_EQ(pg_->query_value("SELECT count(*) FROM psql_dirty"), "0");
  const auto ran = run_shell(psql("tx") + " -c 'SELECT count(*) FROM psql_dirty' 2>&1");
  EXPECT_EQ(ran.exit_code, 0) << ran.output;
  EXPECT_EQ(ran.output, "0\n");
  pg_->execute("DROP TABLE psql_dirty");
}

// --- pool.shards ---------------------------------------------------------------------------

TEST_F(ClientsPgTest, ShardsGiveTheirIdlePlacesToAShardWithAWaitingClient) {
  // Two shards of one connection each, on the daemon's two workers; clients spread over both
  // (pack_until_busy 0), not packed on the first.
  start_daemon({.databases = {{.name = "tx",
                               .pool = "{max_size: 2, min_idle: 2, shards: 2, "
                                       "checkout_timeout: 2s}"}},
                .listen_extra = "pack_until_busy: 0"});
  const auto connections = [&](const char* state) {
    return metric("pgvigil_server_connections", {{"pool", "tx"}, {"state", state}});
  };
  const auto rebalanced = [&] {
    return metric("pgvigil_evictions_total", {{"pool", "tx"}, {"reason", "rebalanced"}});
  };
  ASSERT_TRUE(wait_until([&] { return connections("idle") == 2; }, seconds(10))) << metrics_page();
  EXPECT_EQ(daemon_backends().size(), 2u);
  const auto ready = test::http_get(kHost, admin_port_, "/readyz", seconds(2)).body;
  EXPECT_TRUE(contains(ready, "pool tx (shard 1/2): 1 healthy")) << ready;
  EXPECT_TRUE(contains(ready, "pool tx (shard 2/2): 1 healthy")) << ready;

  // Spreading, the Unix socket deals its clients to the workers in turn: the first and third
  // share a worker, so a shard, whose one connection the first holds.
  const auto unix_conninfo = "host=" + socket_dir().string() + " port=" + std::to_string(port_) +
                             " dbname=tx user=postgres";
  auto first = pq_connect(unix_conninfo);
  auto second = pq_connect(unix_conninfo);
  auto third = pq_connect(unix_conninfo);
  for (const auto* client : {&first, &second, &third}) {
    ASSERT_TRUE(pq_ok(*client)) << PQerrorMessage(client->get());
  }
  ASSERT_EQ(pq_run(first, "BEGIN"), "");
  const auto first_pid = pq_value(first, "SELECT pg_backend_pid()");
  ASSERT_TRUE(first_pid);

  // The third waits on its shard, whose connection is busy, while the other shard's sits
  // idle: that one gives up its place, and the third's shard opens a connection in it.
  ASSERT_EQ(pq_run(third, "BEGIN"), "") << PQerrorMessage(third.get());
  const auto third_pid = pq_value(third, "SELECT pg_backend_pid()");
  ASSERT_TRUE(third_pid);
  EXPECT_NE(*third_pid, *first_pid);
  EXPECT_EQ(rebalanced(), 1.0) << metrics_page();
  // The closed backend goes; the database never holds more than max_size.
  EXPECT_TRUE(wait_until([&] { return daemon_backends().size() == 2u; }, seconds(5)));

  // Both places are in transactions now, both on the first's shard, which holds more than its
  // share: the second's shard is owed the next place that frees, and opens a connection there.
  // Whether it asks before or after the first's COMMIT, that connection's place is its.
  const bool sent = PQsendQuery(second.get(), "SELECT pg_backend_pid()") == 1;
  ASSERT_EQ(pq_run(first, "COMMIT"), "");
  const auto answer = pq_first_result(second, sent);
  ASSERT_TRUE(result_ok(answer)) << PQerrorMessage(second.get());
  const std::string second_pid = PQgetvalue(answer.get(), 0, 0);
  EXPECT_NE(second_pid, *first_pid);
  EXPECT_NE(second_pid, *third_pid);
  EXPECT_EQ(rebalanced(), 2.0) << metrics_page();
  ASSERT_EQ(pq_run(third, "COMMIT"), "");
  EXPECT_TRUE(wait_until([&] { return daemon_backends().size() == 2u; }, seconds(5)));
  // Every client keeps working, on one place per shard again.
  for (const auto* client : {&first, &second, &third}) {
    EXPECT_EQ(pq_value(*client, "SELECT 42"), "42");
  }
}

TEST_F(ClientsPgTest, ShardedPoolRunsPgbenchWithoutErrors) {
  ensure_bench_database();
  start_daemon({.databases = {{.name = "bench_tx",
                               .dbname = "bench",
                               .pool = "{max_size: 4, min_idle: 4, shards: 2}",
                               .ping = kPingUnderLoad}}});
  // Both shards count into the database's series.
  expect_pgbench_runs_and_is_counted("bench_tx", "-S -T 3 -c 8 -j 2 -M extended");
  EXPECT_LE(daemon_backends().size(), 4u);
  // Every connection is back, or on its way back; both states from one page, so that a
  // connection moving between the two reads is not counted twice or missed.
  std::string page;
  EXPECT_TRUE(wait_until(
      [&] {
        page = metrics_page();
        const Labels idle{{"pool", "bench_tx"}, {"state", "idle"}};
        const Labels checked_out{{"pool", "bench_tx"}, {"state", "checked_out"}};
        return sample_value(page, "pgvigil_server_connections", idle).value_or(0) +
                   sample_value(page, "pgvigil_server_connections", checked_out).value_or(0) ==
               4;
      },
      seconds(5)))
      << page;
}

}  // namespace
}  // namespace pgvigil::testing
