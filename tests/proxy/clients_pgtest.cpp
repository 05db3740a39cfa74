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
  EXPECT_LE(static_cast<int>(backends.size()), kMaxSize);
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

// --- 7. dead pooled connections -----------------------------------------------------------

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

// --- 8. a client dying inside a transaction ------------------------------------------------

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

// --- 9. limits ----------------------------------------------------------------------------

TEST_F(ClientsPgTest, ClientConnectionLimitRefusesTheFourth) {
  start_daemon({.databases = {{.name = "tx"}}, .listen_extra = "max_client_connections: 3"});
  std::vector<PgConn> admitted;
  for (int i = 0; i < 3; ++i) {
    admitted.push_back(pq_connect(conninfo("tx")));
    ASSERT_TRUE(pq_ok(admitted.back())) << PQerrorMessage(admitted.back().get());
  }
  EXPECT_EQ(metric("pgvigil_client_connections", {{"pool", "tx"}}), 3);
  auto fourth = pq_connect(conninfo("tx"));
  EXPECT_FALSE(pq_ok(fourth));
  EXPECT_TRUE(contains(PQerrorMessage(fourth.get()), "too many client connections"))
      << PQerrorMessage(fourth.get());
  // pgvigil counts the refusal after closing the socket, so the client may hear it first.
  EXPECT_TRUE(wait_until(
      [&] {
        return metric("pgvigil_client_startup_errors_total", {{"class", "53"}}) == 1;
      },
      seconds(5)))
      << metrics_page();
  // The admitted ones are unaffected; a slot freed is a slot taken.
  EXPECT_EQ(pq_value(admitted[0], "SELECT 'fine'"), "fine");
  admitted.pop_back();
  EXPECT_TRUE(wait_until([&] { return pq_ok(pq_connect(conninfo("tx"))); }, seconds(3)));
}

// The daemon's resident memory, in KiB.
std::int64_t resident_kib(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
}

TEST_F(ClientsPgTest, QuietClientsGiveTheirRelayBuffersBack) {
  // After a transaction a session keeps its 32 KiB client buffer for a moment (the next query
  // usually follows at once); the worker's linger sweep takes it back after 10-20 ms of quiet.
  // Clients that each ran a query and then went quiet must therefore cost far less than a
  // buffer each. They are opened one after another, so only a few linger at any moment, and
  // the cost is measured over a second batch, after the worker's spare buffers are in place.
  start_daemon({.databases = {{.name = "tx"}}});
  constexpr int kBatch = 300;
  std::vector<PgConn> clients;
  const auto open_batch = [&] {
    for (int i = 0; i < kBatch; ++i) {
      clients.push_back(pq_connect(conninfo("tx")));
      ASSERT_TRUE(pq_ok(clients.back())) << PQerrorMessage(clients.back().get());
      ASSERT_EQ(pq_value(clients.back(), "SELECT 1"), "1");
    }
  };
  open_batch();
  // Only the last few clients of the batch can still linger here; a buffer they give back
  // stays in the worker's spare buffers, so it is counted in this figure either way.
  const auto first = resident_kib(daemon_->pid());
  ASSERT_GT(first, 0);
  open_batch();
  // The sweep takes the second batch's buffers back within a few sweep periods; a buffer kept
  // by every quiet client never comes back, and the deadline says so.
  std::int64_t per_client = 0;
  wait_until(
      [&] {
        per_client = (resident_kib(daemon_->pid()) - first) * 1024 / kBatch;
        return per_client < 8 * 1024;
      },
      seconds(5));
  std::printf("quiet clients after one query each: %lld bytes of pgvigil memory per client\n",
              static_cast<long long>(per_client));
  EXPECT_LT(per_client, 8 * 1024) << "quiet clients seem to keep their 32 KiB relay buffers";
  // Parked clients are served again as soon as they speak.
  for (auto& client : clients) ASSERT_EQ(pq_value(client, "SELECT 2"), "2");
}

TEST_F(ClientsPgTest, SilentClientIsDroppedAfterStartupTimeout) {
  start_daemon({.databases = {{.name = "tx"}}, .listen_extra = "startup_timeout: 500ms"});
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port_);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval limit{3, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  const auto connected = Clock::now();
  // Whatever pgvigil says on the way out (if anything), the connection must end: read to EOF.
  char bytes[256];
  ssize_t got = 0;
  do {
    got = ::recv(fd, bytes, sizeof bytes, 0);
  } while (got > 0);
  const long waited = elapsed_ms(connected);
  const int recv_errno = errno;
  ::close(fd);
  EXPECT_TRUE(got == 0 || recv_errno == ECONNRESET)
      << "the connection was not closed: recv " << got << ", errno " << recv_errno;
  EXPECT_GE(waited, 400);
  EXPECT_LE(waited, 1500);  // 500 ms plus slack for a loaded machine
  // A client that talks is not affected.
  auto conn = pq_connect(conninfo("tx"));
  ASSERT_TRUE(pq_ok(conn)) << PQerrorMessage(conn.get());
  std::this_thread::sleep_for(milliseconds(700));  // longer than startup_timeout, on purpose
  EXPECT_EQ(pq_value(conn, "SELECT 'alive'"), "alive");
}

TEST_F(ClientsPgTest, CheckoutTimesOutWhenThePoolIsBusy) {
  start_daemon({.databases = {{.name = "tx",
                               .pool = "{max_size: 1, min_idle: 1, checkout_timeout: 300ms}"}}});
  auto holder = pq_connect(conninfo("tx"));
  ASSERT_TRUE(pq_ok(holder)) << PQerrorMessage(holder.get());
  ASSERT_EQ(pq_run(holder, "BEGIN"), "");
  ASSERT_EQ(pq_value(holder, "SELECT 'holding'"), "holding");

  auto waiter = pq_connect(conninfo("tx"));
  ASSERT_TRUE(pq_ok(waiter)) << PQerrorMessage(waiter.get());
  const auto asked = Clock::now();
  const auto result = pq_first_result(waiter, PQsendQuery(waiter.get(), "SELECT 1") == 1);
  const long waited = elapsed_ms(asked);
  EXPECT_EQ(PQresultStatus(result.get()), PGRES_FATAL_ERROR);
  EXPECT_EQ(result_sqlstate(result), "53300") << PQerrorMessage(waiter.get());
  EXPECT_TRUE(contains(PQerrorMessage(waiter.get()), "became free within 300 ms"))
      << PQerrorMessage(waiter.get());
  EXPECT_GE(waited, 250);
  EXPECT_LE(waited, 2000);
  EXPECT_EQ(metric("pgvigil_client_errors_total", {{"pool", "tx"}, {"class", "53"}}), 1);

  // The holder's transaction is unharmed, and once it ends the pool serves again.
  EXPECT_EQ(pq_value(holder, "SELECT 'still mine'"), "still mine");
  EXPECT_EQ(pq_run(holder, "COMMIT"), "");
  auto later = pq_connect(conninfo("tx"));
  ASSERT_TRUE(pq_ok(later)) << PQerrorMessage(later.get());
  EXPECT_EQ(pq_value(later, "SELECT 'served'"), "served");
}

TEST_F(ClientsPgTest, ARequestThatCameWithTheClientsFinIsNoticedInEveryPoolingMode) {
  // The relay's next client read waits without trying the socket after a complete request
  // (stream/detail/turn_read_op.hpp), so a FIN that arrived together with the request raises no
  // event of its own. Each case must still end the session, and leave no server connection
  // leased.
  start_daemon({.databases = {{.name = "tx"}, {.name = "sess", .pool_mode = "session"}}});
  struct Case {
    std::string database;
    std::string sql;
  };
  for (const auto& [database, sql] : {Case{"tx", "SELECT 1"}, Case{"tx", "BEGIN"},
                                      Case{"sess", "SELECT 1"}, Case{"sess", "BEGIN"}}) {
    SCOPED_TRACE(database + ": " + sql);
    RawPgConnection client(port_);
    std::string failure;
    ASSERT_TRUE(client.login("postgres", database, seconds(5), &failure)) << failure;
    ASSERT_TRUE(client.send_then_finish(typed_message('Q', sql + std::string(1, '\0'))));
    const auto ready = client.read_until('Z', seconds(5));
    ASSERT_TRUE(ready) << "no answer";
    EXPECT_TRUE(client.closed_by_server_within(seconds(2)))
        << "the session outlived its client's FIN";
  }
  for (const std::string pool : {"tx", "sess"}) {
    EXPECT_TRUE(wait_until([&] { return metric("pgvigil_server_connections",
                                               {{"pool", pool}, {"state", "checked_out"}}) == 0; },
                           seconds(3)))
        << pool << "\n" << metrics_page();
  }
}

// --- pool.shards ---------------------------------------------------------------------------

TEST_F(ClientsPgTest, ShardedPoolSplitsItsConnectionsAndDealsClientsInTurn) {
  // Two shards of one connection each, on the daemon's two workers.
  start_daemon({.databases = {{.name = "tx",
                               .pool = "{max_size: 2, min_idle: 2, shards: 2, "
                                       "checkout_timeout: 500ms}"}}});
  const auto connections = [&](const char* state) {
    return metric("pgvigil_server_connections", {{"pool", "tx"}, {"state", state}});
  };
  ASSERT_TRUE(wait_until([&] { return connections("idle") == 2; }, seconds(10))) << metrics_page();
  EXPECT_EQ(daemon_backends().size(), 2u);
  const auto ready = test::http_get(kHost, admin_port_, "/readyz", seconds(2)).body;
  EXPECT_TRUE(contains(ready, "pool tx (shard 1/2): 1 healthy")) << ready;
  EXPECT_TRUE(contains(ready, "pool tx (shard 2/2): 1 healthy")) << ready;

  // Clients are dealt to the shards in turn: first, third and fifth to one, second and fourth
  // to the other. Each shard has its own single connection.
  auto first = pq_connect(conninfo("tx"));
  auto second = pq_connect(conninfo("tx"));
  ASSERT_TRUE(pq_ok(first)) << PQerrorMessage(first.get());
  ASSERT_TRUE(pq_ok(second)) << PQerrorMessage(second.get());
  ASSERT_EQ(pq_run(first, "BEGIN"), "");
  const auto first_pid = pq_value(first, "SELECT pg_backend_pid()");
  const auto second_pid = pq_value(second, "SELECT pg_backend_pid()");  // and gives it back
  ASSERT_TRUE(first_pid && second_pid);
  EXPECT_NE(*first_pid, *second_pid);
  // The shards' gauges add up to the database's. The second's connection goes back a moment
  // after its answer reached it, so the gauges are waited for.
  EXPECT_TRUE(wait_until(
      [&] { return connections("checked_out") == 1 && connections("idle") == 1; }, seconds(5)))
      << metrics_page();

  // The third client shares the first's shard. Shards do not lend to each other: although the
  // other shard's connection is idle, it waits for its own and times out. (One pool of two
  // would have served it: this is what sharding costs, and why it is off by default.)
  auto third = pq_connect(conninfo("tx"));
  ASSERT_TRUE(pq_ok(third)) << PQerrorMessage(third.get());
  const auto refused = pq_first_result(third, PQsendQuery(third.get(), "SELECT 1") == 1);
  EXPECT_EQ(result_sqlstate(refused), "53300") << PQerrorMessage(third.get());
  // The other shard's connection stayed idle (a ping may have it probing for a moment).
  EXPECT_TRUE(wait_until([&] { return connections("idle") == 1; }, seconds(5))) << metrics_page();

  // Each shard keeps serving its own clients on its own backend.
  ASSERT_EQ(pq_run(first, "COMMIT"), "");
  auto fourth = pq_connect(conninfo("tx"));
  auto fifth = pq_connect(conninfo("tx"));
  ASSERT_TRUE(pq_ok(fourth)) << PQerrorMessage(fourth.get());
  ASSERT_TRUE(pq_ok(fifth)) << PQerrorMessage(fifth.get());
  EXPECT_EQ(pq_value(fourth, "SELECT pg_backend_pid()"), second_pid);
  EXPECT_EQ(pq_value(fifth, "SELECT pg_backend_pid()"), first_pid);
  EXPECT_EQ(daemon_backends().size(), 2u) << "the shards together keep max_size connections";
}

TEST_F(ClientsPgTest, ShardedPoolRunsPgbenchWithoutErrors) {
  ensure_bench_database();
  start_daemon({.databases = {{.name = "bench_tx", .dbname = "bench",
                               .pool = "{max_size: 4, min_idle: 4, shards: 2}"}}});
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
