// Real PostgreSQL clients through the real pgvigil binary, between clients: logins with every
// method, what one client does never reaching another (transactions, session reset, startup
// parameters), and a cancel reaching only its own client's query. Each test starts its own daemon
// (its own application_name, so it only ever counts its own backends); the suite shares one
// PostgreSQL.
#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/proxy/pq_client.hpp"
#include "tests/proxy/proxy_pg_fixture.hpp"
#include "tests/support/pg_cluster.hpp"
#include "tests/support/subprocess.hpp"
#include "tests/support/wait_until.hpp"

namespace pgvigil::testing {
namespace {

class ClientsPgTest : public ProxyPgFixture {};

// --- 1. logins ----------------------------------------------------------------------------

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
    const auto info = conninfo(login.database, login.user,
                               login.password.empty() ? "" : "password=" + login.password);
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
  const auto refused =
      run_shell("PGPASSWORD=nope psql -X -A -t -h 127.0.0.1 -p " + std::to_string(port_) +
                " -U scramuser -d scramdb -c 'SELECT 1' 2>&1");
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

// --- 2. isolation -------------------------------------------------------------------------

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
      if (!pq_ok(conn))
        return report("client " + std::to_string(id) + ": " + PQerrorMessage(conn.get()));
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
        const auto identity =
            pq_value(conn, "SELECT txid_current() || '/' || pg_backend_pid()", &error);
        if (!identity) return report(error);
        if (auto failed = pq_run(conn, "INSERT INTO marks VALUES (" + mine + ")");
            !failed.empty()) {
          return report(failed);
        }
        // Inside the transaction: exactly its own row; no other client's open transaction.
        if (!expect("SELECT count(*) FROM marks WHERE id = " + mine, "1")) return;
        if (!expect("SELECT count(*) FROM marks", "1")) return;
        if (!expect("SELECT current_setting('statement_timeout')", timeout)) return;
        // Still the same transaction on the same backend.
        if (!expect("SELECT txid_current() || '/' || pg_backend_pid()", *identity)) return;
        if (auto failed = pq_run(conn, "ROLLBACK"); !failed.empty()) return report(failed);
        if (PQtransactionStatus(conn.get()) != PQTRANS_IDLE)
          return report("not idle after ROLLBACK");
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
  start_daemon(
      {.databases = {
           {.name = "sess", .pool_mode = "session", .pool = "{max_size: 1, min_idle: 1}"}}});
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
  auto a = pq_connect(
      conninfo("tx", "postgres",
               "application_name=client_a options='-c search_path=a_schema -c DateStyle=German'"));
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

// --- 3. cancel ----------------------------------------------------------------------------

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
                                app_name_ +
                                "' AND state = 'active' AND query LIKE 'SELECT pg_sleep%'") == "2";
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
