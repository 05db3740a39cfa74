// A client's session state in transaction pooling, through the real pgvigil binary: what a
// client sets is its own, follows it to whichever server connection it gets next, and never
// reaches another client.

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <set>
#include <string>
#include <vector>

#include "tests/proxy/pq_client.hpp"
#include "tests/proxy/proxy_pg_fixture.hpp"
#include "tests/support/wait_until.hpp"

namespace pgvigil::testing {
namespace {

class SessionStatePgTest : public ProxyPgFixture {};

// Runs look(i) `times` times; before every other one, `b` opens a transaction (committed after),
// holding one server connection, so that on a pool of two the other client's transactions run on
// both connections.
template <typename Look>
void every_other_time_b_holds_a_connection(const PgConn& b, int times, Look look) {
  for (int i = 0; i < times; ++i) {
    const bool hold = i % 2 == 0;
    if (hold) ASSERT_EQ(pq_run(b, "BEGIN"), "");
    look(i);
    if (hold) ASSERT_EQ(pq_run(b, "COMMIT"), "");
  }
}

TEST_F(SessionStatePgTest, ASettingTheServerReportsFollowsItsClientAndNoOtherClient) {
  // One pool of two (not a shard of one per worker): its clients' transactions meet both.
  start_daemon({.databases = {{.name = "tx", .pool = "{max_size: 2, min_idle: 2, shards: 1}"}}});
  const auto default_timezone = pg_->query_value("SHOW TimeZone");
  ASSERT_NE(default_timezone, "Pacific/Auckland");
  auto a = pq_connect(conninfo("tx", "postgres", "application_name=client_a"));
  auto b = pq_connect(conninfo("tx"));
  ASSERT_TRUE(pq_ok(a) && pq_ok(b)) << PQerrorMessage(a.get()) << PQerrorMessage(b.get());

  // Session-level SETs in one transaction...
  ASSERT_EQ(pq_run(a,
                   "BEGIN; SET TimeZone = 'Pacific/Auckland'; SET application_name = 'a_app';"
                   " SET DateStyle = 'German'; SET IntervalStyle = 'sql_standard'; COMMIT"),
            "");
  // ...and one rolled back, which the server undoes (and reports undone).
  ASSERT_EQ(pq_run(a, "BEGIN; SET TimeZone = 'Asia/Tokyo'; ROLLBACK"), "");
  // A SET LOCAL lasts its transaction only.
  ASSERT_EQ(pq_run(a, "BEGIN; SET LOCAL application_name = 'only_here'; COMMIT"), "");
  // The client sees the server's spelling.
  EXPECT_STREQ(PQparameterStatus(a.get(), "DateStyle"), "German, DMY");

  std::set<std::string> a_backends;
  every_other_time_b_holds_a_connection(b, 20, [&](int i) {
    a_backends.insert(pq_value(a, "SELECT pg_backend_pid()").value_or("?"));
    EXPECT_EQ(pq_value(a, "SHOW TimeZone"), "Pacific/Auckland") << i;
    EXPECT_EQ(pq_value(a, "SHOW application_name"), "a_app") << i;
    EXPECT_EQ(pq_value(a, "SHOW DateStyle"), "German, DMY") << i;
    EXPECT_EQ(pq_value(a, "SHOW IntervalStyle"), "sql_standard") << i;
    EXPECT_NE(pq_value(b, "SHOW TimeZone"), "Pacific/Auckland") << i;
    EXPECT_NE(pq_value(b, "SHOW application_name"), "a_app") << i;
    EXPECT_EQ(pq_value(b, "SHOW IntervalStyle"), "postgres") << i;
  });
  EXPECT_EQ(a_backends.size(), 2u) << "a's settings went with it to both server connections";

  // RESET takes the client back to the server's default, wherever it goes next.
  ASSERT_EQ(pq_run(a, "RESET TimeZone"), "");
  ASSERT_EQ(pq_run(b, "BEGIN"), "");
  EXPECT_EQ(pq_value(a, "SHOW TimeZone"), default_timezone);
  ASSERT_EQ(pq_run(b, "COMMIT"), "");
  EXPECT_EQ(pq_value(a, "SHOW TimeZone"), default_timezone);

  // A client that comes later sees none of it.
  auto c = pq_connect(conninfo("tx"));
  ASSERT_TRUE(pq_ok(c));
  for (int i = 0; i < 4; ++i) {
    EXPECT_NE(pq_value(c, "SHOW application_name"), "a_app");
    EXPECT_EQ(pq_value(c, "SHOW IntervalStyle"), "postgres");
    EXPECT_EQ(pq_value(c, "SHOW DateStyle"), pg_->query_value("SHOW DateStyle"));
  }
}

// Each kind of session state the hostile probe of issue 13 left behind, on a pool of one server
// connection, so that the next client certainly gets the same one: the client that made the
// state keeps working with it (pinned), and the next client sees none of it.
TEST_F(SessionStatePgTest, SessionStatePinsItsClientAndIsGoneForTheNextClient) {
  start_daemon({.databases = {{.name = "tx", .pool = "{max_size: 1, min_idle: 1}"}}});
  pg_->execute(
      "DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'lowpriv') "
      "THEN CREATE ROLE lowpriv; END IF; END$$");
  pg_->execute("GRANT pg_read_all_stats TO lowpriv");
  struct Leak {
    std::string cause;
    std::string make;   // run by the first client
    std::string look;   // what both clients ask
    std::string made;   // what the first client sees
    std::string clean;  // what the next client sees
  };
  const std::vector<Leak> leaks = {
      {"role", "SET ROLE lowpriv", "SELECT current_user", "lowpriv", "postgres"},
      {"role", "SET SESSION AUTHORIZATION lowpriv", "SELECT session_user", "lowpriv", "postgres"},
      // A custom setting where the relay cannot follow it (pg_settings leaves it out).
      {"setting", "BEGIN; SET myapp.leak = 'x'; COMMIT",
       "SELECT coalesce(current_setting('myapp.leak', true), '')", "x", ""},
      {"setting", "SELECT set_config('myapp.leak2', 'y', false)",
       "SELECT coalesce(current_setting('myapp.leak2', true), '')", "y", ""},
      {"listen", "LISTEN leak", "SELECT count(*) FROM pg_listening_channels()", "1", "0"},
      {"advisory_lock", "SELECT pg_advisory_lock(42)",
       "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 42", "1", "0"},
      {"temporary_table", "CREATE TEMP TABLE leak_tmp (x int)",
       "SELECT to_regclass('pg_temp.leak_tmp') IS NOT NULL", "t", "f"},
      {"cursor", "BEGIN; DECLARE leak_c CURSOR WITH HOLD FOR SELECT 1; COMMIT",
       "SELECT count(*) FROM pg_cursors", "1", "0"},
      {"sql_prepare", "PREPARE leak_p AS SELECT 1",
       "SELECT count(*) FROM pg_prepared_statements WHERE name = 'leak_p'", "1", "0"},
  };
  for (const auto& leak : leaks) {
    SCOPED_TRACE(leak.make);
    const Labels pinned{{"pool", "tx"}, {"cause", leak.cause}};
    {
      auto first = pq_connect(conninfo("tx"));
      ASSERT_TRUE(pq_ok(first)) << PQerrorMessage(first.get());
      const auto made = pq_exec(first, leak.make);
      ASSERT_TRUE(result_ok(made)) << PQerrorMessage(first.get());
      // Across several transactions, its state stays the client's.
      for (int i = 0; i < 3; ++i) EXPECT_EQ(pq_value(first, leak.look), leak.made) << i;
      EXPECT_TRUE(
          wait_until([&] { return metric("pgvigil_pinned_clients", pinned) == 1; }, seconds(5)));
    }
    EXPECT_TRUE(
        wait_until([&] { return metric("pgvigil_pinned_clients", pinned) == 0; }, seconds(5)));
    auto next = pq_connect(conninfo("tx"));
    ASSERT_TRUE(pq_ok(next)) << PQerrorMessage(next.get());
    for (int i = 0; i < 3; ++i) EXPECT_EQ(pq_value(next, leak.look), leak.clean) << i;
  }
}

TEST_F(SessionStatePgTest, ALoneSetOfASettingTheServerDoesNotReportFollowsItsClient) {
  // One pool of two (not a shard of one per worker): its clients' transactions meet both.
  start_daemon({.databases = {{.name = "tx", .pool = "{max_size: 2, min_idle: 2, shards: 1}"}}});
  auto a = pq_connect(conninfo("tx"));
  auto b = pq_connect(conninfo("tx"));
  ASSERT_TRUE(pq_ok(a) && pq_ok(b));
  ASSERT_EQ(pq_run(a, "SET search_path = evil, public"), "");
  ASSERT_EQ(pq_run(a, "SET statement_timeout TO 4242"), "");
  ASSERT_EQ(pq_run(a, "SET myapp.tenant = 'acme'"), "");
  // A SET the server refuses changes nothing.
  EXPECT_NE(pq_run(a, "SET statement_timeout = 'soon'"), "");
  std::set<std::string> a_backends;
  every_other_time_b_holds_a_connection(b, 12, [&](int i) {
    a_backends.insert(pq_value(a, "SELECT pg_backend_pid()").value_or("?"));
    EXPECT_EQ(pq_value(a, "SHOW search_path"), "evil, public") << i;
    EXPECT_EQ(pq_value(a, "SHOW statement_timeout"), "4242ms") << i;
    EXPECT_EQ(pq_value(a, "SELECT current_setting('myapp.tenant')"), "acme") << i;
    EXPECT_EQ(pq_value(b, "SHOW search_path"), "\"$user\", public") << i;
    EXPECT_EQ(pq_value(b, "SHOW statement_timeout"), "0") << i;
  });
  EXPECT_EQ(a_backends.size(), 2u) << "a's settings went with it to both server connections";
  EXPECT_EQ(metric("pgvigil_pinned_clients", {{"pool", "tx"}, {"cause", "setting"}}), 0);
  // RESET makes a SET undone for good, wherever the client goes next.
  ASSERT_EQ(pq_run(a, "RESET statement_timeout"), "");
  every_other_time_b_holds_a_connection(b, 4, [&](int i) {
    EXPECT_EQ(pq_value(a, "SHOW statement_timeout"), "0") << i;
    EXPECT_EQ(pq_value(a, "SHOW search_path"), "evil, public") << i;
  });
  a.reset();
  auto c = pq_connect(conninfo("tx"));
  ASSERT_TRUE(pq_ok(c));
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(pq_value(c, "SHOW statement_timeout"), "0") << i;
    EXPECT_EQ(pq_value(c,
                       "SELECT current_setting('myapp.tenant', true) IS NULL OR "
                       "current_setting('myapp.tenant', true) = ''"),
              "t")
        << i;
  }
}

// A SET inside a transaction block or beside other statements in one Query, SET SESSION
// CHARACTERISTICS and set_config(..., false): read back when the transaction is over, followed to
// the client's next server connection, never seen by another client. What the server undid
// (ROLLBACK, ROLLBACK TO SAVEPOINT, the end of a SET LOCAL) is not followed.
TEST_F(SessionStatePgTest, SettingsChangedWhereTheRelayCannotFollowThemAreReadBack) {
  // One pool of two (not a shard of one per worker): its clients' transactions meet both.
  start_daemon({.databases = {{.name = "tx", .pool = "{max_size: 2, min_idle: 2, shards: 1}"}}});
  auto a = pq_connect(conninfo("tx"));
  auto b = pq_connect(conninfo("tx"));
  ASSERT_TRUE(pq_ok(a) && pq_ok(b));
  const auto default_work_mem = pg_->query_value("SHOW work_mem");
  const auto default_maintenance = pg_->query_value("SHOW maintenance_work_mem");
  const auto default_statistics = pg_->query_value("SHOW default_statistics_target");
  ASSERT_NE(default_work_mem, "8MB");
  ASSERT_EQ(pq_run(a,
                   "BEGIN; SET statement_timeout = 4242; SET LOCAL lock_timeout = 777;"
                   " SET default_statistics_target = 321; COMMIT"),
            "");
  ASSERT_EQ(pq_run(a, "SELECT 1; SET work_mem = '8MB'"), "");
  ASSERT_TRUE(pq_value(a, "SELECT set_config('search_path', 'evil, public', false)"));
  ASSERT_EQ(pq_run(a, "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ;"
                      " SELECT 1"),
            "");
  ASSERT_EQ(pq_run(a, "BEGIN; SET default_statistics_target = 555; ROLLBACK"), "");
  ASSERT_EQ(pq_run(a,
                   "BEGIN; SAVEPOINT s; SET maintenance_work_mem = '77MB'; ROLLBACK TO s;"
                   " COMMIT"),
            "");
  std::set<std::string> a_backends;
  every_other_time_b_holds_a_connection(b, 12, [&](int i) {
    a_backends.insert(pq_value(a, "SELECT pg_backend_pid()").value_or("?"));
    EXPECT_EQ(pq_value(a, "SHOW statement_timeout"), "4242ms") << i;
    EXPECT_EQ(pq_value(a, "SHOW lock_timeout"), "0") << i;
    EXPECT_EQ(pq_value(a, "SHOW default_statistics_target"), "321") << i;
    EXPECT_EQ(pq_value(a, "SHOW work_mem"), "8MB") << i;
    EXPECT_EQ(pq_value(a, "SHOW search_path"), "evil, public") << i;
    EXPECT_EQ(pq_value(a, "SHOW default_transaction_isolation"), "repeatable read") << i;
    EXPECT_EQ(pq_value(a, "SHOW maintenance_work_mem"), default_maintenance) << i;
    EXPECT_EQ(pq_value(b, "SHOW statement_timeout"), "0") << i;
    EXPECT_EQ(pq_value(b, "SHOW work_mem"), default_work_mem) << i;
    EXPECT_EQ(pq_value(b, "SHOW search_path"), "\"$user\", public") << i;
    EXPECT_EQ(pq_value(b, "SHOW default_transaction_isolation"), "read committed") << i;
    EXPECT_EQ(pq_value(b, "SHOW default_statistics_target"), default_statistics) << i;
  });
  EXPECT_EQ(a_backends.size(), 2u) << "a's settings went with it to both server connections";
  EXPECT_EQ(metric("pgvigil_pinned_clients", {{"pool", "tx"}, {"cause", "setting"}}), 0);

  // A RESET inside a transaction is read back too.
  ASSERT_EQ(pq_run(a, "BEGIN; RESET statement_timeout; RESET work_mem; COMMIT"), "");
  every_other_time_b_holds_a_connection(b, 4, [&](int i) {
    EXPECT_EQ(pq_value(a, "SHOW statement_timeout"), "0") << i;
    EXPECT_EQ(pq_value(a, "SHOW work_mem"), default_work_mem) << i;
    EXPECT_EQ(pq_value(a, "SHOW search_path"), "evil, public") << i;
  });
  a.reset();
  auto c = pq_connect(conninfo("tx"));
  ASSERT_TRUE(pq_ok(c));
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(pq_value(c, "SHOW search_path"), "\"$user\", public") << i;
    EXPECT_EQ(pq_value(c, "SHOW default_transaction_isolation"), "read committed") << i;
  }
}

// A list in a startup setting is a list, as it is on a direct connection (-c search_path=a,b is
// two schemas, not one named "a,b").
TEST_F(SessionStatePgTest, AStartupListSettingKeepsItsElements) {
  start_daemon({.databases = {{.name = "tx", .pool = "{max_size: 1, min_idle: 1}"}}});
  pg_->execute("CREATE SCHEMA IF NOT EXISTS list_a");
  pg_->execute("CREATE TABLE IF NOT EXISTS list_a.only_in_a (x int)");
  auto a = pq_connect(conninfo("tx", "postgres", "options='-c search_path=list_a,public'"));
  ASSERT_TRUE(pq_ok(a)) << PQerrorMessage(a.get());
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(pq_value(a, "SHOW search_path"), "list_a,public") << i;
    EXPECT_EQ(pq_value(a, "SELECT count(*) FROM only_in_a"), "0") << i;
  }
}

TEST_F(SessionStatePgTest, StartupSettingsAreShownInTheServersSpelling) {
  start_daemon({.databases = {{.name = "tx"}}});
  for (int i = 0; i < 3; ++i) {  // the first client's teaches the route; the others reuse it
    auto a = pq_connect(conninfo("tx", "postgres",
                                 "options='-c DateStyle=German -c client_encoding=utf8'"));
    ASSERT_TRUE(pq_ok(a)) << PQerrorMessage(a.get());
    EXPECT_STREQ(PQparameterStatus(a.get(), "DateStyle"), "German, DMY") << i;
    EXPECT_STREQ(PQparameterStatus(a.get(), "client_encoding"), "UTF8") << i;
    EXPECT_EQ(pq_value(a, "SHOW DateStyle"), "German, DMY") << i;
  }
}

TEST_F(SessionStatePgTest, AResetByOneClientNeverCostsTheNextItsStartupSettings) {
  start_daemon({.databases = {{.name = "tx", .pool = "{max_size: 1, min_idle: 1}"}}});
  const std::string options = "options='-c search_path=a_schema -c statement_timeout=4321'";
  for (const char* reset : {"RESET search_path", "RESET ALL", "DISCARD ALL"}) {
    {
      auto first = pq_connect(conninfo("tx", "postgres", options));
      ASSERT_TRUE(pq_ok(first));
      EXPECT_EQ(pq_value(first, "SHOW search_path"), "a_schema");
      ASSERT_EQ(pq_run(first, reset), "") << reset;
    }
    // The same settings, the same server connection: they are applied again, not assumed.
    auto next = pq_connect(conninfo("tx", "postgres", options));
    ASSERT_TRUE(pq_ok(next));
    EXPECT_EQ(pq_value(next, "SHOW search_path"), "a_schema") << reset;
    EXPECT_EQ(pq_value(next, "SHOW statement_timeout"), "4321ms") << reset;
  }
}

TEST_F(SessionStatePgTest, APinnedClientKeepsOneConnectionWhileOthersShareTheRest) {
  // One pool of two (not a shard of one per worker): its clients' transactions meet both.
  start_daemon({.databases = {{.name = "tx", .pool = "{max_size: 2, min_idle: 2, shards: 1}"}}});
  auto pinned = pq_connect(conninfo("tx"));
  auto other = pq_connect(conninfo("tx"));
  auto third = pq_connect(conninfo("tx"));
  ASSERT_TRUE(pq_ok(pinned) && pq_ok(other) && pq_ok(third));
  ASSERT_TRUE(pq_value(pinned, "SELECT set_config('myapp.pin', 'pinned_only', false)"));
  const auto own_backend = pq_value(pinned, "SELECT pg_backend_pid()");
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(pq_value(pinned, "SELECT pg_backend_pid()"), own_backend) << i;
    EXPECT_NE(pq_value(other, "SELECT pg_backend_pid()"), own_backend) << i;
    EXPECT_EQ(pq_value(third, "SELECT coalesce(current_setting('myapp.pin', true), '')"), "")
        << i;
  }
}

}  // namespace
}  // namespace pgvigil::testing
