// Real PostgreSQL clients (psql, pgbench, psycopg2, libpq) through the real pgvigil binary to a
// real PostgreSQL: what an application sees. Each test starts its own daemon with the databases
// it needs (its own application_name, so it only ever counts its own backends); the suite shares
// one PostgreSQL.

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <chrono>
#include <sstream>
#include <string>

#include "tests/proxy/pq_client.hpp"
#include "tests/proxy/proxy_pg_fixture.hpp"
#include "tests/proxy/raw_pg_connection.hpp"
#include "tests/support/pg_cluster.hpp"
#include "tests/support/subprocess.hpp"
#include "tests/support/wait_until.hpp"

namespace pgvigil::testing {
namespace {

class ClientsPgTest : public ProxyPgFixture {};

// --- 1. psql ------------------------------------------------------------------------------

TEST_F(ClientsPgTest, PsqlOverTcpAndUnixSocketInBothPoolModes) {
  start_daemon({.databases = {{.name = "tx"}, {.name = "sess", .pool_mode = "session"}}});
  for (const std::string database : {"tx", "sess"}) {
    for (const std::string host : {std::string(kHost), socket_dir().string()}) {
      const auto ran = run_shell(psql(database, host) +
                                 " -c \"SELECT 6 * 7, current_database(), current_user\" 2>&1");
      EXPECT_EQ(ran.exit_code, 0) << database << " via " << host << ": " << ran.output;
      EXPECT_EQ(ran.output, "42|postgres|postgres\n") << database << " via " << host;
    }
  }
}

// As PostgreSQL and PgBouncer send it: a client that connects wakes once for its login's
// answer, not once for AuthenticationOk and again for the rest (pgbench -C, serverless clients).
TEST_F(ClientsPgTest, AuthenticationOkAndTheStartupReplyLeaveInOneWrite) {
  start_daemon({.databases = {{.name = "tx"}, {.name = "sess", .pool_mode = "session"}}});
  for (const std::string database : {"tx", "sess"}) {
    RawPgConnection client(port_);
    ASSERT_TRUE(client.send(startup_packet({{"user", "postgres"}, {"database", database}})));
    const auto first = client.read_first_arrival(seconds(5));
    const std::string auth_ok("R\0\0\0\x08\0\0\0\0", 9);
    const std::string ready_idle("Z\0\0\0\x05I", 6);
    EXPECT_TRUE(first.starts_with(auth_ok)) << database << ": " << first.size() << " bytes";
    EXPECT_TRUE(first.ends_with(ready_idle)) << database << ": " << first.size() << " bytes";
    EXPECT_NE(first.find('K'), std::string::npos) << database;  // BackendKeyData
  }
}

TEST_F(ClientsPgTest, PsqlScriptCopiesOutAndIn) {
  start_daemon({.databases = {{.name = "tx"}, {.name = "sess", .pool_mode = "session"}}});
  for (const std::string database : {"tx", "sess"}) {
    const std::string src = "copy_src_" + database;
    const std::string dst = "copy_dst_" + database;
    const std::string csv = "copy_" + database + ".csv";
    pg_->execute("DROP TABLE IF EXISTS " + src + ", " + dst);
    write_file(work_->path() / "copy.sql",
               "CREATE TABLE " + src +
                   " AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 2000) g;\n" +
                   "\\copy " + src + " TO '" + csv + "' CSV\n" + "CREATE TABLE " + dst +
                   " (id int, v text);\n" + "\\copy " + dst + " FROM '" + csv + "' CSV\n" +
                   "SELECT count(*), sum(id), count(*) FILTER (WHERE v = md5(id::text)) FROM " +
                   dst + ";\n");
    const auto ran = run_shell(psql(database) + " -q -f copy.sql 2>&1");
    EXPECT_EQ(ran.exit_code, 0) << database << ": " << ran.output;
    EXPECT_EQ(ran.output, "2000|2001000|2000\n") << database;
    const auto exported = read_file(work_->path() / csv);
    EXPECT_EQ(std::count(exported.begin(), exported.end(), '\n'), 2000) << database;
    EXPECT_EQ(pg_->query_value("SELECT count(*) FROM " + dst), "2000");
    pg_->execute("DROP TABLE " + src + ", " + dst);
  }
}

TEST_F(ClientsPgTest, PsqlStreamsFiveMegabytesOfCopyIn) {
  start_daemon({.databases = {{.name = "tx"}}});
  pg_->execute("DROP TABLE IF EXISTS copy_big; CREATE TABLE copy_big (id int, v text)");
  constexpr int kRows = 50000;
  constexpr int kWidth = 100;
  std::string data;
  data.reserve(kRows * (kWidth + 8));
  for (int i = 1; i <= kRows; ++i) {
    data += std::to_string(i) + "\t" + std::string(kWidth, static_cast<char>('a' + i % 26)) + "\n";
  }
  ASSERT_GT(data.size(), 5'000'000u);
  write_file(work_->path() / "big.tsv", data);
  const double bytes_before = metric("pgvigil_relayed_bytes_total", {{"pool", "tx"}});

  const auto ran = run_shell(psql("tx") + " -c \"COPY copy_big FROM STDIN\" < big.tsv 2>&1");
  EXPECT_EQ(ran.exit_code, 0) << ran.output;
  EXPECT_EQ(ran.output, "COPY 50000\n");
  EXPECT_EQ(pg_->query_value("SELECT count(*) || '|' || sum(id) || '|' || sum(length(v)) || '|' || "
                             "count(*) FILTER (WHERE v = repeat(chr(97 + id % 26), 100)) "
                             "FROM copy_big"),
            "50000|1250025000|5000000|50000");
  // The session adds its last bytes to the counters just after relaying the final answer.
  EXPECT_TRUE(wait_until(
      [&] {
        return metric("pgvigil_relayed_bytes_total", {{"pool", "tx"}}) - bytes_before >=
               static_cast<double>(data.size());
      },
      seconds(5)))
      << metric("pgvigil_relayed_bytes_total", {{"pool", "tx"}}) - bytes_before << " of "
      << data.size() << " bytes counted";
  pg_->execute("DROP TABLE copy_big");
}

TEST_F(ClientsPgTest, LargeResultArrivesWhole) {
  start_daemon({.databases = {{.name = "tx"}, {.name = "sess", .pool_mode = "session"}}});
  // psql: 100000 rows of 1000 'x' plus a newline each.
  const auto ran = run_shell(
      psql("tx") +
      " -c \"SELECT repeat('x', 1000) FROM generate_series(1, 100000)\" | tr -d x | wc -l -c");
  EXPECT_EQ(ran.exit_code, 0) << ran.output;
  std::istringstream counts(ran.output);
  long lines = 0;
  long bytes = 0;
  counts >> lines >> bytes;
  EXPECT_EQ(lines, 100000) << ran.output;
  EXPECT_EQ(bytes, 100000) << "only newlines may remain after deleting every x: " << ran.output;
  const auto psql_x = run_shell(
      psql("tx") + " -c \"SELECT repeat('x', 1000) FROM generate_series(1, 100000)\" | wc -c");
  EXPECT_EQ(std::stol(psql_x.output), 100000L * 1001) << psql_x.output;

  // libpq, session mode: every row and every byte.
  auto conn = pq_connect(conninfo("sess"));
  ASSERT_TRUE(pq_ok(conn)) << PQerrorMessage(conn.get());
  auto result = pq_exec(conn, "SELECT g, repeat('y', 1000) FROM generate_series(1, 100000) g");
  ASSERT_TRUE(result_ok(result)) << PQerrorMessage(conn.get());
  ASSERT_EQ(PQntuples(result.get()), 100000);
  long total = 0;
  bool in_order = true;
  for (int row = 0; row < PQntuples(result.get()); ++row) {
    total += PQgetlength(result.get(), row, 1);
    in_order = in_order && std::stoi(PQgetvalue(result.get(), row, 0)) == row + 1;
  }
  EXPECT_EQ(total, 100000L * 1000);
  EXPECT_TRUE(in_order);
  EXPECT_EQ(pq_value(conn, "SELECT 'still usable'"), "still usable");
}

// --- 2. pgbench ---------------------------------------------------------------------------

TEST_F(ClientsPgTest, QuerySentDuringASlowLargeResultLeavesBothResultsWhole) {
  // The client does not read while a 20 MB result comes back, so pgvigil's send to it stalls;
  // meanwhile the client sends its next query. That query must go to the server without the
  // rest of the first result being read into the buffer pgvigil is still sending from, and the
  // second result must follow the first, not interleave with it.
  start_daemon({.databases = {{.name = "tx"}}});
  RawPgConnection client(port_, 64 * 1024);
  std::string failure;
  ASSERT_TRUE(client.login("postgres", "tx", seconds(5), &failure)) << failure;
  constexpr int kRows = 20000;
  constexpr int kWidth = 1000;
  // Numbered rows, so that a lost, repeated or overwritten piece of the stream shows.
  ASSERT_TRUE(client.send(typed_message(
      'Q', "SELECT g, repeat('x', " + std::to_string(kWidth) + ") FROM generate_series(1, " +
               std::to_string(kRows) + ") g" + std::string(1, '\0'))));
  // The stall, seen on our own socket: the kernel's receive queue stops growing at a level that
  // only a full receive buffer reaches: 64 KiB were asked for, Linux doubles that and lets at
  // least half of it hold data (112 KiB here). A level short of that is a pause in the stream.
  constexpr int kFullReceiveBuffer = 64 * 1024;
  int queued = -1;
  int stable_polls = 0;
  const bool stalled = wait_until(
      [&] {
        const int now = client.unread_in_kernel();
        stable_polls = now == queued ? stable_polls + 1 : 0;
        queued = now;
        return queued >= kFullReceiveBuffer && stable_polls >= 5;  // unchanged for 100 ms
      },
      seconds(10));
  ASSERT_TRUE(stalled) << "our receive queue did not fill up and stay full: " << queued << " bytes";
  std::printf("stalled with %d bytes in our receive queue\n", queued);
  ASSERT_TRUE(client.send(typed_message('Q', std::string("SELECT 'second'") + '\0')));
  // pgvigil's side has taken the query in (acknowledged every byte) while its send to us is
  // still stalled: our receive queue is as full as before.
  const bool taken = wait_until([&] { return client.unacknowledged_sent() == 0; }, seconds(10));
  ASSERT_TRUE(taken) << client.unacknowledged_sent() << " bytes of the second query unacknowledged";
  ASSERT_GE(client.unread_in_kernel(), queued) << "we read nothing, yet the queue shrank";

  const auto row_payload = [&](int number) {
    const auto text = std::to_string(number);
    return std::string("\0\2", 2) + be32(static_cast<std::uint32_t>(text.size())) + text +
           be32(kWidth) + std::string(kWidth, 'x');
  };
  BackendMessage message;
  int rows = 0;
  int bad_rows = 0;
  std::string types;  // every message that is not a row of the first result, in order
  while (client.read_message(message, seconds(10)) == RawPgConnection::ReadEnd::message) {
    if (message.type == 'D' && rows < kRows && types.size() == 1) {
      ++rows;
      if (message.payload != row_payload(rows)) ++bad_rows;
      continue;
    }
    types += message.type;
    if (message.type == 'D')
      EXPECT_EQ(message.payload, std::string("\0\1", 2) + be32(6) + "second");
    if (types == "TCZTDCZ") break;
  }
  EXPECT_EQ(rows, kRows);
  EXPECT_EQ(bad_rows, 0);
  // RowDescription, the rows, CommandComplete, ReadyForQuery; then the second query's.
  EXPECT_EQ(types, "TCZTDCZ");
}

TEST_F(ClientsPgTest, PgbenchSelectOnlyRunsInEveryProtocolModeThePoolAllows) {
  ensure_bench_database();
  start_daemon({.databases = {{.name = "bench_tx", .dbname = "bench", .ping = kPingUnderLoad},
                              {.name = "bench_sess",
                               .pool_mode = "session",
                               .dbname = "bench",
                               .ping = kPingUnderLoad}}});
  struct Run {
    std::string protocol;
    std::string database;
  };
  for (const auto& run :
       {Run{"simple", "bench_tx"}, Run{"extended", "bench_tx"}, Run{"prepared", "bench_sess"}}) {
    expect_pgbench_runs_and_is_counted(run.database, "-S -T 3 -c 4 -j 2 -M " + run.protocol);
  }
}

// --- 3. psycopg2 --------------------------------------------------------------------------

constexpr const char* kPsycopgScript = R"PY(
import sys
import psycopg2
import psycopg2.errors

dsn, table = sys.argv[1], sys.argv[2]
conn = psycopg2.connect(dsn)
cur = conn.cursor()
cur.execute(f"DROP TABLE IF EXISTS {table}")
cur.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, name text)")
conn.commit()

# A transaction with parameters.
cur.execute(f"INSERT INTO {table} VALUES (%s, %s), (%s, %s)", (1, "one", 2, "two's"))
cur.execute(f"SELECT id, name FROM {table} WHERE id >= %s ORDER BY id", (1,))
rows = cur.fetchall()
assert rows == [(1, "one"), (2, "two's")], rows
conn.commit()

# A server-side cursor inside a transaction.
named = conn.cursor(name="walker")
named.execute("SELECT g FROM generate_series(1, 1000) g")
total = 0
while True:
    chunk = named.fetchmany(100)
    if not chunk:
        break
    total += sum(r[0] for r in chunk)
named.close()
conn.commit()
assert total == 500500, total

# A server-side error inside a transaction is reported; the transaction is aborted.
cur.execute(f"INSERT INTO {table} VALUES (%s, %s)", (3, "three"))
try:
    cur.execute("SELECT 1 / 0")
    raise SystemExit("division by zero did not fail")
except psycopg2.errors.DivisionByZero as error:
    assert error.pgcode == "22012", error.pgcode
try:
    cur.execute("SELECT 1")
    raise SystemExit("an aborted transaction accepted a statement")
except psycopg2.errors.InFailedSqlTransaction:
    pass
conn.rollback()

# The next transaction works, and the failed one left nothing behind.
cur.execute(f"SELECT count(*) FROM {table}")
assert cur.fetchone()[0] == 2
conn.commit()

# Autocommit: visible to another connection at once.
conn.autocommit = True
cur.execute(f"INSERT INTO {table} VALUES (%s, %s)", (4, "four"))
other = psycopg2.connect(dsn)
other_cur = other.cursor()
other_cur.execute(f"SELECT name FROM {table} WHERE id = %s", (4,))
assert other_cur.fetchone() == ("four",)
other.close()
cur.execute(f"DROP TABLE {table}")
conn.close()
print("psycopg2 OK")
)PY";

TEST_F(ClientsPgTest, Psycopg2ClientInBothPoolModes) {
  start_daemon({.databases = {{.name = "tx"}, {.name = "sess", .pool_mode = "session"}}});
  write_file(work_->path() / "client.py", kPsycopgScript);
  for (const std::string database : {"tx", "sess"}) {
    const auto ran = run_shell("/usr/bin/python3 client.py '" + conninfo(database) + "' py_items_" +
                               database + " 2>&1");
    EXPECT_EQ(ran.exit_code, 0) << database << ":\n" << ran.output;
    EXPECT_EQ(ran.output, "psycopg2 OK\n") << database;
  }
  // Each transaction is counted just after its last answer was relayed.
  EXPECT_TRUE(wait_until(
      [&] {
        return metric("pgvigil_transactions_total", {{"pool", "tx"}}) >= 5 &&
               metric("pgvigil_queries_total", {{"pool", "tx"}}) >= 15;
      },
      seconds(5)))
      << metrics_page();
}

}  // namespace
}  // namespace pgvigil::testing
