// Named prepared statements through pgvigil in transaction pooling, with real clients (libpq,
// pgbench) and a pool smaller than its clients, so that a client's statements must follow it
// from one server connection to another. What each client sees must be what a direct
// connection gives it; what the server holds must stay within pool.max_prepared_statements.

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <functional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/proxy/pq_client.hpp"
#include "tests/proxy/proxy_pg_fixture.hpp"
#include "tests/support/wait_until.hpp"

namespace pgvigil::testing {
namespace {

class PreparedStatementsPgTest : public ProxyPgFixture {
 protected:
  // Prepares `name` as `sql` (one int parameter); "" on success, else libpq's message.
  static std::string prepare(const PgConn& conn, const std::string& name, const std::string& sql) {
    PgResult result(PQprepare(conn.get(), name.c_str(), sql.c_str(), 1, nullptr));
    return result_ok(result) ? "" : std::string(PQerrorMessage(conn.get()));
  }
  // Executes the named statement with one parameter; its first value, or "error <SQLSTATE>".
  static std::string execute(const PgConn& conn, const std::string& name, const std::string& arg) {
    const char* values[] = {arg.c_str()};
    PgResult result(PQexecPrepared(conn.get(), name.c_str(), 1, values, nullptr, nullptr, 0));
    if (!result_ok(result)) return "error " + result_sqlstate(result);
    if (PQntuples(result.get()) < 1) return "no rows";
    return PQgetvalue(result.get(), 0, 0);
  }
  // The statements the server connection that runs this query holds.
  static std::string server_statement_count(const PgConn& conn) {
    return pq_value(conn, "SELECT count(*) FROM pg_prepared_statements").value_or("?");
  }
};

TEST_F(PreparedStatementsPgTest, PgbenchPreparedModeRunsOnFewerConnectionsThanClients) {
  ensure_bench_database();
  start_daemon({.databases = {{.name = "bench_tx",
                               .dbname = "bench",
                               .pool = "{max_size: 2, min_idle: 1}",
                               .ping = kPingUnderLoad}}});
  expect_pgbench_runs_and_is_counted("bench_tx", "-S -T 3 -c 8 -j 2 -M prepared");
  // The full TPC-B-like script too: several statements per transaction, writes included. One
  // thread per client: pgbench prepares each statement with a blocking PQprepare at its first
  // use, inside the transaction, so a thread that serves two clients would wait for a server
  // connection that its other client holds (as with any pooler of fewer connections).
  expect_pgbench_runs_and_is_counted("bench_tx", "-T 3 -c 4 -j 4 -M prepared");
}

TEST_F(PreparedStatementsPgTest, EachClientKeepsItsOwnStatementsAcrossServerConnections) {
  // One pool of two (not a shard of one per worker): its clients' transactions meet both.
  start_daemon({.databases = {{.name = "tx", .pool = "{max_size: 2, min_idle: 2, shards: 1}"}}});
  auto a = pq_connect(conninfo("tx"));
  auto b = pq_connect(conninfo("tx"));
  ASSERT_TRUE(pq_ok(a) && pq_ok(b)) << PQerrorMessage(a.get()) << PQerrorMessage(b.get());
  // The same name means different statements to different clients.
  ASSERT_EQ(prepare(a, "s", "SELECT $1::int + 1000"), "");
  ASSERT_EQ(prepare(b, "s", "SELECT $1::int + 2000"), "");
  // And the same SQL under different names is one statement on a server connection.
  ASSERT_EQ(prepare(a, "shared_a", "SELECT $1::int * 10"), "");
  ASSERT_EQ(prepare(b, "shared_b", "SELECT $1::int * 10"), "");
  std::set<std::string> backends;
  for (int i = 0; i < 40; ++i) {
    // A transaction on one client pins a connection, so the other's moves between the two.
    const bool hold = i % 3 == 0;
    if (hold) ASSERT_EQ(pq_run(a, "BEGIN"), "");
    const auto n = std::to_string(i);
    EXPECT_EQ(execute(a, "s", n), std::to_string(1000 + i)) << i;
    EXPECT_EQ(execute(b, "s", n), std::to_string(2000 + i)) << i;
    EXPECT_EQ(execute(b, "shared_b", n), std::to_string(10 * i)) << i;
    EXPECT_EQ(execute(a, "shared_a", n), std::to_string(10 * i)) << i;
    backends.insert(pq_value(b, "SELECT pg_backend_pid()").value_or("?"));
    if (hold) ASSERT_EQ(pq_run(a, "COMMIT"), "");
  }
  EXPECT_EQ(backends.size(), 2u) << "b's statements ran on both server connections";
  // On any one connection: a's s, b's s and the one shared text; never more.
  EXPECT_EQ(pq_value(a,
                     "SELECT count(*) FROM pg_prepared_statements "
                     "WHERE statement = 'SELECT $1::int * 10'"),
            "1");
  EXPECT_LE(std::stoi(server_statement_count(a)), 3);
}

TEST_F(PreparedStatementsPgTest, TheLimitClosesTheLeastRecentlyUsedOnTheServer) {
  start_daemon({.databases = {{.name = "tx",
                               .pool = "{max_size: 1, min_idle: 1, max_prepared_statements: 3}"}}});
  auto conn = pq_connect(conninfo("tx"));
  ASSERT_TRUE(pq_ok(conn)) << PQerrorMessage(conn.get());
  constexpr int kStatements = 10;
  for (int k = 0; k < kStatements; ++k) {
    ASSERT_EQ(prepare(conn, "s" + std::to_string(k), "SELECT $1::int + " + std::to_string(k)), "");
  }
  int most = 0;
  for (int round = 0; round < 3; ++round) {
    for (int k = 0; k < kStatements; ++k) {
      EXPECT_EQ(execute(conn, "s" + std::to_string(k), "100"), std::to_string(100 + k)) << k;
      most = std::max(most, std::stoi(server_statement_count(conn)));
    }
  }
  EXPECT_EQ(most, 3) << "the server connection holds the limit's worth, no more";
}

TEST_F(PreparedStatementsPgTest, ErrorsAreTheServersOwnAndTheClientGoesOn) {
  start_daemon({.databases = {{.name = "tx", .pool = "{max_size: 1, min_idle: 1}"}}});
  auto conn = pq_connect(conninfo("tx"));
  ASSERT_TRUE(pq_ok(conn)) << PQerrorMessage(conn.get());
  // A Parse the server refuses: its error, in its words; the client has no such statement.
  PgResult bad(PQprepare(conn.get(), "bad", "SELEKT $1", 1, nullptr));
  EXPECT_EQ(result_sqlstate(bad), "42601") << PQerrorMessage(conn.get());
  EXPECT_EQ(execute(conn, "bad", "1"), "error 26000");
  // A name never prepared: the server's 26000.
  EXPECT_EQ(execute(conn, "never", "1"), "error 26000");
  // An execution error inside an extended batch skips to the Sync, and nothing is left owed.
  ASSERT_EQ(prepare(conn, "div", "SELECT 1 / $1::int"), "");
  EXPECT_EQ(execute(conn, "div", "0"), "error 22012");
  EXPECT_EQ(execute(conn, "div", "1"), "1");
  EXPECT_EQ(pq_value(conn, "SELECT 42"), "42");
  // A name prepared twice inside a transaction: the server keeps one statement.
  ASSERT_EQ(pq_run(conn, "BEGIN"), "");
  ASSERT_EQ(prepare(conn, "twice", "SELECT $1::int"), "");
  EXPECT_EQ(execute(conn, "twice", "7"), "7");
  ASSERT_EQ(pq_run(conn, "COMMIT"), "");
}

TEST_F(PreparedStatementsPgTest, DeallocateAndDiscardAllForgetTheClientsStatements) {
  start_daemon({.databases = {{.name = "tx", .pool = "{max_size: 1, min_idle: 1}"}}});
  auto a = pq_connect(conninfo("tx"));
  auto b = pq_connect(conninfo("tx"));
  ASSERT_TRUE(pq_ok(a) && pq_ok(b));
  ASSERT_EQ(prepare(a, "s", "SELECT $1::int + 1"), "");
  ASSERT_EQ(prepare(b, "s", "SELECT $1::int + 1"), "");
  PgResult deallocated(PQexec(a.get(), "DEALLOCATE s"));
  ASSERT_TRUE(result_ok(deallocated)) << PQerrorMessage(a.get());
  EXPECT_STREQ(PQcmdStatus(deallocated.get()), "DEALLOCATE");
  EXPECT_EQ(execute(a, "s", "1"), "error 26000");
  EXPECT_EQ(execute(b, "s", "1"), "2") << "b's statement of the same text stays";
  // Prepared again after its DEALLOCATE: a new statement of that name.
  ASSERT_EQ(prepare(a, "s", "SELECT $1::int + 5"), "");
  EXPECT_EQ(execute(a, "s", "1"), "6");
  PgResult discarded(PQexec(a.get(), "DISCARD ALL"));
  ASSERT_TRUE(result_ok(discarded)) << PQerrorMessage(a.get());
  EXPECT_EQ(execute(a, "s", "1"), "error 26000");
  EXPECT_EQ(execute(b, "s", "1"), "2") << "prepared again for b where the server lost it";
  // DEALLOCATE ALL from b: b's statements are gone, the connection goes on serving.
  ASSERT_EQ(pq_run(b, "DEALLOCATE ALL"), "");
  EXPECT_EQ(execute(b, "s", "1"), "error 26000");
  ASSERT_EQ(prepare(a, "t", "SELECT $1::int * 3"), "");
  EXPECT_EQ(execute(a, "t", "3"), "9");
}

TEST_F(PreparedStatementsPgTest, EveryWayOfClosingAllStatementsKeepsTheRecordsTrue) {
  start_daemon({.databases = {{.name = "tx", .pool = "{max_size: 1, min_idle: 1}"}}});
  auto a = pq_connect(conninfo("tx"));
  auto b = pq_connect(conninfo("tx"));
  ASSERT_TRUE(pq_ok(a) && pq_ok(b));
  ASSERT_EQ(prepare(b, "kept", "SELECT $1::int - 1"), "");
  // DEALLOCATE ALL and DISCARD ALL as psycopg sends them (the unnamed statement of a batch),
  // inside a simple Query of several statements, and as a named statement of their own
  // (pgjdbc prepares any statement it runs five times).
  const auto extended = [&](const char* sql) {
    PgResult result(PQexecParams(a.get(), sql, 0, nullptr, nullptr, nullptr, nullptr, 0));
    return result_ok(result) ? "" : std::string(PQerrorMessage(a.get()));
  };
  const auto named = [&](const char* sql) {
    PgResult prepared(PQprepare(a.get(), "closer", sql, 0, nullptr));
    PgResult result(PQexecPrepared(a.get(), "closer", 0, nullptr, nullptr, nullptr, 0));
    return result_ok(result) ? "" : std::string(PQerrorMessage(a.get()));
  };
  const std::vector<std::function<std::string()>> closers = {
      [&] { return extended("DEALLOCATE ALL"); },
      [&] { return extended("DISCARD ALL"); },
      [&] { return pq_run(a, "SELECT 1; DEALLOCATE ALL"); },
      [&] { return named("DEALLOCATE ALL"); },
  };
  for (std::size_t i = 0; i < closers.size(); ++i) {
    EXPECT_EQ(execute(b, "kept", "10"), "9") << i;
    EXPECT_EQ(closers[i](), "") << i;
    EXPECT_EQ(server_statement_count(b), "0") << i << ": the server closed them all";
    EXPECT_EQ(execute(b, "kept", "10"), "9") << i << ": b's statement prepared again";
  }
}

TEST_F(PreparedStatementsPgTest, AStatementMadeStaleByATableChangeIsPreparedAgain) {
  start_daemon({.databases = {{.name = "tx", .pool = "{max_size: 1, min_idle: 1}"}}});
  pg_->execute(
      "DROP TABLE IF EXISTS stale_plan; CREATE TABLE stale_plan (a int); "
      "INSERT INTO stale_plan VALUES (1)");
  auto conn = pq_connect(conninfo("tx"));
  ASSERT_TRUE(pq_ok(conn));
  const auto columns = [&](const std::string& name) {
    PgResult result(PQexecPrepared(conn.get(), name.c_str(), 0, nullptr, nullptr, nullptr, 0));
    return result_ok(result) ? std::to_string(PQnfields(result.get()))
                             : "error " + result_sqlstate(result);
  };
  PgResult first(PQprepare(conn.get(), "s1", "SELECT * FROM stale_plan", 0, nullptr));
  ASSERT_TRUE(result_ok(first));
  EXPECT_EQ(columns("s1"), "1");
  pg_->execute("ALTER TABLE stale_plan ADD COLUMN b int");
  // As on a direct connection: the old statement fails once...
  EXPECT_EQ(columns("s1"), "error 0A000");
  // ...and the driver's remedy, the same text prepared again, works.
  PgResult again(PQprepare(conn.get(), "s2", "SELECT * FROM stale_plan", 0, nullptr));
  ASSERT_TRUE(result_ok(again)) << PQerrorMessage(conn.get());
  EXPECT_EQ(columns("s2"), "2");
  EXPECT_EQ(pq_value(conn,
                     "SELECT count(*) FROM pg_prepared_statements "
                     "WHERE statement = 'SELECT * FROM stale_plan'"),
            "1")
      << "the stale statement was closed on the server";
  pg_->execute("DROP TABLE stale_plan");
}

TEST_F(PreparedStatementsPgTest, SessionPoolingPassesStatementsUntouched) {
  start_daemon({.databases = {{.name = "sess", .pool_mode = "session"}}});
  auto conn = pq_connect(conninfo("sess"));
  ASSERT_TRUE(pq_ok(conn));
  ASSERT_EQ(prepare(conn, "mine", "SELECT $1::int"), "");
  // The server holds the client's own name.
  EXPECT_EQ(pq_value(conn, "SELECT name FROM pg_prepared_statements"), "mine");
}

TEST_F(PreparedStatementsPgTest, ALimitOfZeroPinsAClientThatPreparesToItsConnection) {
  ensure_bench_database();
  start_daemon({.databases = {{.name = "bench_tx",
                               .dbname = "bench",
                               .pool = "{max_size: 4, max_prepared_statements: 0}",
                               .ping = kPingUnderLoad}}});
  // Each client keeps the server connection its first named statement went to: as in session
  // pooling, so pgbench's 4 clients need the pool's 4 connections.
  expect_pgbench_runs_and_is_counted("bench_tx", "-S -T 2 -c 4 -j 4 -M prepared");

  auto conn = pq_connect(conninfo("bench_tx"));
  ASSERT_TRUE(pq_ok(conn)) << PQerrorMessage(conn.get());
  ASSERT_EQ(prepare(conn, "mine", "SELECT $1::int + 1"), "");
  EXPECT_EQ(execute(conn, "mine", "41"), "42");
  // Untouched: the server holds the client's own name.
  EXPECT_EQ(pq_value(conn, "SELECT name FROM pg_prepared_statements"), "mine");
  EXPECT_TRUE(wait_until(
      [&] {
        return metric("pgvigil_pinned_clients",
                      {{"pool", "bench_tx"}, {"cause", "prepared_statement"}}) == 1;
      },
      seconds(5)));
  conn.reset();
  // Reset when the client leaves: the next client sees none of it.
  EXPECT_TRUE(wait_until(
      [&] {
        return metric("pgvigil_pinned_clients",
                      {{"pool", "bench_tx"}, {"cause", "prepared_statement"}}) == 0;
      },
      seconds(5)));
  auto next = pq_connect(conninfo("bench_tx"));
  ASSERT_TRUE(pq_ok(next));
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(pq_value(next, "SELECT count(*) FROM pg_prepared_statements"), "0");
  }
}

}  // namespace
}  // namespace pgvigil::testing
