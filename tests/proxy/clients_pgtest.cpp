// Real PostgreSQL clients (psql, pgbench, psycopg2, libpq) through the real pgvigil binary to a
// real PostgreSQL: what an application sees. Each test starts its own daemon with the databases
// it needs (its own application_name, so it only ever counts its own backends); the suite shares
// one PostgreSQL.

#include <arpa/inet.h>
#include <signal.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/metrics/http_client.hpp"
#include "tests/proxy/pq_client.hpp"
#include "tests/proxy/proxy_pg_fixture.hpp"
#include "tests/proxy/raw_pg_connection.hpp"
#include "tests/support/admin_metrics.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/free_port.hpp"
#include "tests/support/pg_cluster.hpp"
#include "tests/support/prometheus_text.hpp"
#include "tests/support/subprocess.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/wait_until.hpp"

namespace pgvigil::testing {
namespace {

class ClientsPgTest : public ProxyPgFixture {};

// --- 1. psql ------------------------------------------------------------------------------

TEST_F(ClientsPgTest, PsqlOverTcpAndUnixSocketInBothPoolModes) {
  start_daemon({.databases = {{.name = "tx"}, {.name = "sess", .pool_mode = "session"}}});
  for (const std::string database : {"tx", "sess"}) {
    for (const std::string host : {std::string(kHost), socket_dir().string()}) {
      const auto ran = run_shell(
          psql(database, host) + " -c \"SELECT 6 * 7, current_database(), current_user\" 2>&1");
      EXPECT_EQ(ran.exit_code, 0) << database << " via " << host << ": " << ran.output;
      EXPECT_EQ(ran.output, "42|postgres|postgres\n") << database << " via " << host;
    }
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
                   "\\copy " + src + " TO '" + csv + "' CSV\n" +
                   "CREATE TABLE " + dst + " (id int, v text);\n" +
                   "\\copy " + dst + " FROM '" + csv + "' CSV\n" +
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
    if (message.type == 'D') EXPECT_EQ(message.payload, std::string("\0\1", 2) + be32(6) + "second");
    if (types == "TCZTDCZ") break;
  }
  EXPECT_EQ(rows, kRows);
  EXPECT_EQ(bad_rows, 0);
  // RowDescription, the rows, CommandComplete, ReadyForQuery; then the second query's.
  EXPECT_EQ(types, "TCZTDCZ");
}

TEST_F(ClientsPgTest, PgbenchSelectOnlyRunsInEveryProtocolModeThePoolAllows) {
  ensure_bench_database();
  start_daemon({.databases = {{.name = "bench_tx", .dbname = "bench"},
                              {.name = "bench_sess", .pool_mode = "session", .dbname = "bench"}}});
  struct Run {
    std::string protocol;
    std::string database;
  };
  for (const auto& run : {Run{"simple", "bench_tx"}, Run{"extended", "bench_tx"},
                          Run{"prepared", "bench_sess"}}) {
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

// --- 4. logins ----------------------------------------------------------------------------

TEST_F(ClientsPgTest, LoginsWithTrustMd5AndScram) {
  // A SCRAM verifier in PostgreSQL's own format, made by PostgreSQL.
  pg_->execute("DROP ROLE IF EXISTS clients_scram_source");
  pg_->execute(
      "SET password_encryption = 'scram-sha-256'; "
      "CREATE ROLE clients_scram_source PASSWORD 'scram-secret'");
  const auto verifier =
      pg_->query_value("SELECT rolpassword FROM pg_authid WHERE rolname = 'clients_scram_source'");
  ASSERT_TRUE(verifier.starts_with("SCRAM-SHA-256$4096:")) << verifier;
  const auto md5 = pg_->query_value("SELECT 'md5' || md5('md5-secret' || 'md5user')");
  start_daemon({.databases = {{.name = "open", .auth_method = "trust"},
                              {.name = "md5db", .auth_method = "md5"},
                              {.name = "scramdb"}},
                .auth_method = "scram-sha-256",
                .users_file = "\"md5user\" \"" + md5 + "\"\n\"scramuser\" \"" + verifier +
                              "\"\n\"plainuser\" \"plain-secret\"\n"});

  struct Login {
    std::string database;
    std::string user;
    std::string password;
    bool accepted;
  };
  const Login logins[] = {
      {"open", "anybody", "", true},
      {"md5db", "md5user", "md5-secret", true},
      {"md5db", "plainuser", "plain-secret", true},
      {"scramdb", "scramuser", "scram-secret", true},
      {"scramdb", "plainuser", "plain-secret", true},
      {"md5db", "md5user", "wrong", false},
      {"scramdb", "scramuser", "wrong", false},
      {"scramdb", "plainuser", "wrong", false},
      {"scramdb", "nosuchuser", "scram-secret", false},
  };
  for (const auto& login : logins) {
    const auto info =
        conninfo(login.database, login.user, login.password.empty() ? "" : "password=" + login.password);
    auto conn = pq_connect(info);
    const std::string what = login.database + " as " + login.user + "/" + login.password;
    if (login.accepted) {
      ASSERT_TRUE(pq_ok(conn)) << what << ": " << PQerrorMessage(conn.get());
      EXPECT_EQ(pq_value(conn, "SELECT 'in'"), "in") << what;
    } else {
      EXPECT_FALSE(pq_ok(conn)) << what;
      EXPECT_TRUE(contains(PQerrorMessage(conn.get()),
                           "password authentication failed for user \"" + login.user + "\""))
          << what << ": " << PQerrorMessage(conn.get());
    }
  }
  EXPECT_EQ(metric("pgvigil_client_errors_total", {{"pool", "md5db"}, {"class", "28"}}), 1);
  EXPECT_EQ(metric("pgvigil_client_errors_total", {{"pool", "scramdb"}, {"class", "28"}}), 3);
  EXPECT_EQ(metric("pgvigil_client_errors_total", {{"pool", "open"}, {"class", "28"}}), 0);

  // psql with SCRAM, the password from the environment.
  const auto ran = run_shell("PGPASSWORD=scram-secret psql -X -A -t -h 127.0.0.1 -p " +
                             std::to_string(port_) + " -U scramuser -d scramdb -c 'SELECT 1' 2>&1");
  EXPECT_EQ(ran.exit_code, 0) << ran.output;
  EXPECT_EQ(ran.output, "1\n");
  const auto refused = run_shell("PGPASSWORD=nope psql -X -A -t -h 127.0.0.1 -p " +
                                 std::to_string(port_) + " -U scramuser -d scramdb -c 'SELECT 1' 2>&1");
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_TRUE(contains(refused.output, "password authentication failed")) << refused.output;

  // An unknown database: 3D000, and the hint lists what pgvigil serves.
  auto unknown = pq_connect(conninfo("nope", "anybody", "password=x"));
  EXPECT_FALSE(pq_ok(unknown));
  const std::string message = PQerrorMessage(unknown.get());
  EXPECT_TRUE(contains(message, "database \"nope\" does not exist")) << message;
  EXPECT_TRUE(contains(message, "HINT")) << message;
  EXPECT_TRUE(contains(message, "md5db") && contains(message, "scramdb") &&
              contains(message, "open"))
      << message;
  // It reached no pool, so it counts among the startup errors, not any database's.
  EXPECT_EQ(metric("pgvigil_client_startup_errors_total", {{"class", "3D"}}), 1);
  EXPECT_EQ(metric("pgvigil_client_startup_errors_total", {{"class", "28"}}), 0);
  for (const char* pool : {"md5db", "scramdb", "open"}) {
    EXPECT_EQ(metric("pgvigil_client_errors_total", {{"pool", pool}, {"class", "3D"}}), 0) << pool;
  }
  pg_->execute("DROP ROLE clients_scram_source");
}

// --- 5. isolation -------------------------------------------------------------------------

TEST_F(ClientsPgTest, TransactionPoolingKeepsTransactionsApart) {
  pg_->execute("DROP TABLE IF EXISTS marks; CREATE TABLE marks (id int)");
  constexpr int kMaxSize = 5;
  start_daemon({.databases = {{.name = "tx", .pool = "{max_size: 5}"}}});
  constexpr int kClients = 20;
  constexpr int kRounds = 10;
  std::mutex mutex;
  std::vector<std::string> errors;
  std::set<std::string> backends;
  std::atomic<int> completed{0};
  const auto report = [&](const std::string& error) {
    std::lock_guard lock(mutex);
    if (errors.size() < 20) errors.push_back(error);
  };
  std::vector<std::thread> clients;
  for (int id = 1; id <= kClients; ++id) {
    clients.emplace_back([&, id] {
      auto conn = pq_connect(conninfo("tx"));
      if (!pq_ok(conn)) return report("client " + std::to_string(id) + ": " + PQerrorMessage(conn.get()));
      const auto expect = [&](const std::string& sql, const std::string& wanted) {
        std::string error;
        const auto got = pq_value(conn, sql, &error);
        if (!got) return report("client " + std::to_string(id) + ": " + error), false;
        if (*got != wanted) {
          return report("client " + std::to_string(id) + ": " + sql + " gave " + *got +
                        ", expected " + wanted),
                 false;
        }
        return true;
      };
      const std::string mine = std::to_string(id);
      // Distinct per client and far longer than any statement here can take on a busy machine.
      // Not a whole number of seconds, so PostgreSQL shows it in ms, exactly as it was set.
      const std::string timeout = std::to_string(600000 + id) + "ms";
      for (int round = 0; round < kRounds; ++round) {
        if (auto error = pq_run(conn, "BEGIN"); !error.empty()) return report(error);
        if (auto error = pq_run(conn, "SET LOCAL statement_timeout = '" + timeout + "'");
            !error.empty()) {
          return report(error);
        }
        std::string error;
        const auto identity = pq_value(conn, "SELECT txid_current() || '/' || pg_backend_pid()", &error);
        if (!identity) return report(error);
        if (auto failed = pq_run(conn, "INSERT INTO marks VALUES (" + mine + ")"); !failed.empty()) {
          return report(failed);
        }
        // Inside the transaction: exactly its own row; no other client's open transaction.
        if (!expect("SELECT count(*) FROM marks WHERE id = " + mine, "1")) return;
        if (!expect("SELECT count(*) FROM marks", "1")) return;
        if (!expect("SELECT current_setting('statement_timeout')", timeout)) return;
        // Still the same transaction on the same backend.
        if (!expect("SELECT txid_current() || '/' || pg_backend_pid()", *identity)) return;
        if (auto failed = pq_run(conn, "ROLLBACK"); !failed.empty()) return report(failed);
        if (PQtransactionStatus(conn.get()) != PQTRANS_IDLE) return report("not idle after ROLLBACK");
        // Between transactions: nobody's uncommitted rows, nobody's SET LOCAL.
        if (!expect("SELECT count(*) FROM marks", "0")) return;
        if (!expect("SELECT current_setting('statement_timeout')", "0")) return;
        std::lock_guard lock(mutex);
        backends.insert(identity->substr(identity->find('/') + 1));
      }
      ++completed;
    });
  }
  for (auto& client : clients) client.join();
  for (const auto& error : errors) ADD_FAILURE() << error;
  EXPECT_EQ(completed.load(), kClients);
  // Never more than max_size at once: each backend beyond it replaced one whose place went to
  // another shard (rebalanced).
  const auto rebalanced = static_cast<int>(
      metric("pgvigil_evictions_total", {{"pool", "tx"}, {"reason", "rebalanced"}}));
  EXPECT_LE(static_cast<int>(backends.size()), kMaxSize + rebalanced);
  EXPECT_EQ(pg_->query_value("SELECT count(*) FROM marks"), "0");
  EXPECT_TRUE(wait_until(
      [&] {
        return metric("pgvigil_transactions_total", {{"pool", "tx"}}) >= kClients * kRounds;
      },
      seconds(5)))
      << metrics_page();
  pg_->execute("DROP TABLE marks");
}

TEST_F(ClientsPgTest, SessionPoolingResetsTheConnectionBetweenClients) {
  start_daemon({.databases = {{.name = "sess",
                               .pool_mode = "session",
                               .pool = "{max_size: 1, min_idle: 1}"}}});
  std::string first_backend;
  {
    auto a = pq_connect(conninfo("sess"));
    ASSERT_TRUE(pq_ok(a)) << PQerrorMessage(a.get());
    first_backend = pq_value(a, "SELECT pg_backend_pid()").value_or("?");
    for (const char* sql : {"SET search_path = nope", "SET application_name = 'leak'",
                            "SET statement_timeout = '4242ms'", "CREATE TEMP TABLE a_tmp (x int)",
                            "PREPARE a_stmt AS SELECT 1"}) {
      ASSERT_EQ(pq_run(a, sql), "");
    }
    EXPECT_EQ(pq_value(a, "SHOW search_path"), "nope");
    EXPECT_EQ(pq_value(a, "SHOW application_name"), "leak");
  }
  auto b = pq_connect(conninfo("sess"));
  ASSERT_TRUE(pq_ok(b)) << PQerrorMessage(b.get());
  // max_size 1: the same server connection, reset.
  EXPECT_EQ(pq_value(b, "SELECT pg_backend_pid()"), first_backend);
  EXPECT_EQ(pq_value(b, "SHOW search_path"), "\"$user\", public");
  EXPECT_NE(pq_value(b, "SHOW application_name"), "leak");
  EXPECT_EQ(pq_value(b, "SHOW statement_timeout"), "0");
  EXPECT_EQ(pq_value(b, "SELECT to_regclass('a_tmp') IS NULL"), "t");
  EXPECT_EQ(pq_value(b, "SELECT count(*) FROM pg_prepared_statements"), "0");
}

TEST_F(ClientsPgTest, StartupParametersFollowTheirClientInTransactionPooling) {
  start_daemon({.databases = {{.name = "tx", .pool = "{max_size: 1, min_idle: 1}"}}});
  const auto default_datestyle = pg_->query_value("SHOW DateStyle");
  auto a = pq_connect(conninfo(
      "tx", "postgres", "application_name=client_a options='-c search_path=a_schema -c DateStyle=German'"));
  auto b = pq_connect(conninfo("tx", "postgres", "application_name=client_b"));
  auto c = pq_connect(conninfo("tx"));
  ASSERT_TRUE(pq_ok(a)) << PQerrorMessage(a.get());
  ASSERT_TRUE(pq_ok(b)) << PQerrorMessage(b.get());
  ASSERT_TRUE(pq_ok(c)) << PQerrorMessage(c.get());
  EXPECT_STREQ(PQparameterStatus(a.get(), "application_name"), "client_a");
  EXPECT_STREQ(PQparameterStatus(b.get(), "application_name"), "client_b");

  const std::string sql =
      "SELECT current_setting('application_name') || '|' || current_setting('search_path') || "
      "'|' || current_setting('DateStyle') || '|' || pg_backend_pid()";
  const std::string backend = pq_value(c, "SELECT pg_backend_pid()").value_or("?");
  const std::string defaults = "|\"$user\", public|" + default_datestyle + "|" + backend;
  // max_size 1: all three share one server connection, taking turns.
  for (int round = 0; round < 3; ++round) {
    EXPECT_EQ(pq_value(a, sql), "client_a|a_schema|German, DMY|" + backend) << round;
    EXPECT_EQ(pq_value(b, sql), "client_b" + defaults) << round;
    EXPECT_EQ(pq_value(c, sql), app_name_ + defaults) << round;
  }
}

// --- 6. cancel ----------------------------------------------------------------------------

TEST_F(ClientsPgTest, CancelStopsOnlyItsOwnClientsQuery) {
  start_daemon({.databases = {{.name = "tx", .pool = "{max_size: 4}"}}});
  auto victim = pq_connect(conninfo("tx"));
  auto bystander = pq_connect(conninfo("tx"));
  ASSERT_TRUE(pq_ok(victim)) << PQerrorMessage(victim.get());
  ASSERT_TRUE(pq_ok(bystander)) << PQerrorMessage(bystander.get());
  // The key libpq holds is pgvigil's, not a backend's.
  EXPECT_NE(PQbackendPID(victim.get()), PQbackendPID(bystander.get()));
  PGcancel* cancel = PQgetCancel(victim.get());
  ASSERT_NE(cancel, nullptr);

  PgResult victim_result;
  PgResult bystander_result;
  Clock::time_point victim_done;
  const auto started = Clock::now();
  std::thread victim_thread([&] {
    victim_result.reset(PQexec(victim.get(), "SELECT pg_sleep(30)"));
    victim_done = Clock::now();
  });
  std::thread bystander_thread(
      [&] { bystander_result.reset(PQexec(bystander.get(), "SELECT pg_sleep(5)")); });
  const bool both_running = wait_until(
      [&] {
        return pg_->query_value("SELECT count(*) FROM pg_stat_activity WHERE application_name = '" +
                                app_name_ + "' AND state = 'active' AND query LIKE 'SELECT pg_sleep%'") ==
               "2";
      },
      seconds(5));
  EXPECT_TRUE(both_running);
  const auto cancelled_at = Clock::now();
  char error[256] = {};
  EXPECT_EQ(PQcancel(cancel, error, sizeof error), 1) << error;
  PQfreeCancel(cancel);
  victim_thread.join();
  const auto cancel_ms =
      std::chrono::duration_cast<milliseconds>(victim_done - cancelled_at).count();
  EXPECT_LT(cancel_ms, 1000);
  EXPECT_EQ(PQresultStatus(victim_result.get()), PGRES_FATAL_ERROR);
  EXPECT_EQ(result_sqlstate(victim_result), "57014") << PQerrorMessage(victim.get());
  bystander_thread.join();
  EXPECT_EQ(PQresultStatus(bystander_result.get()), PGRES_TUPLES_OK)
      << PQerrorMessage(bystander.get());
  EXPECT_GE(elapsed_ms(started), 4900);
  // Both sessions go on.
  EXPECT_EQ(pq_value(victim, "SELECT 'after cancel'"), "after cancel");
  EXPECT_EQ(pq_value(bystander, "SELECT 'after sleep'"), "after sleep");
}

}  // namespace
}  // namespace pgvigil::testing
