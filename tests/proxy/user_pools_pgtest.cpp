// Per-user pools (databases.<name>.user_pools) through the real pgvigil binary with psql: each
// client's queries run as its own role, on a pool of its own that logs in to the server with
// the role's password from the users file (the server checks it: SCRAM for these roles), in
// transaction and session pooling; the metrics and /readyz carry the user; a role the users
// file holds only as a SCRAM verifier logs in with what its client's login proved; one that
// logged in without proving anything (trust) is refused after it authenticated, saying why; a
// role's pool keeps no idle connections once its clients are gone (no min_idle per role).

#include <gtest/gtest.h>

#include <string>

#include "tests/metrics/http_client.hpp"
#include "tests/proxy/proxy_pg_fixture.hpp"
#include "tests/support/wait_until.hpp"

namespace pgvigil::testing {
namespace {

class UserPoolsPgTest : public ProxyPgFixture {
 protected:
  static void SetUpTestSuite() {
    PgCluster::Options options;
    options.max_connections = 60;
    // The server checks the password pgvigil logs in with.
    options.hba_lines = {"host all alice,bob,carol 127.0.0.1/32 scram-sha-256"};
    pg_ = PgCluster::start_new(options);
    for (const char* role : {"alice", "bob", "carol"}) {
      pg_->execute(std::string("CREATE ROLE ") + role + " LOGIN PASSWORD 'pw-" + role + "'");
      pg_->execute(std::string("GRANT pg_read_all_stats TO ") + role);
    }
  }

  void start() {
    const std::string carol_verifier =
        pg_->query_value("SELECT rolpassword FROM pg_authid WHERE rolname = 'carol'");
    ProxyOptions options{{{"mine"}, {"held"}, {"shared"}, {"open"}},
                         "scram-sha-256",
                         "\"alice\" \"pw-alice\"\n\"bob\" \"pw-bob\"\n\"carol\" \"" +
                             carol_verifier + "\"\n\"postgres\" \"pw-postgres\"\n"};
    options.databases[0].user_pools = true;
    options.databases[1].user_pools = true;
    options.databases[1].pool_mode = "session";
    options.databases[3].user_pools = true;
    options.databases[3].auth_method = "trust";
    options.databases.push_back({"brief"});
    options.databases.back().user_pools = true;
    options.databases.back().pool = "{min_idle: 2, idle_timeout: 3s}";
    start_daemon(options);
  }

  // bob's server backends, whatever application_name his clients' sessions set on them.
  std::string backends_of(const std::string& role) const {
    return pg_->query_value("SELECT count(*) FROM pg_stat_activity WHERE usename = '" + role + "'");
  }
  double idle_of(const std::string& database, const std::string& role) const {
    return metric("pgvigil_server_connections",
                  {{"pool", database}, {"user", role}, {"state", "idle"}});
  }
};

TEST_F(UserPoolsPgTest, EachClientsQueriesRunAsItsOwnRole) {
  start();
  for (const std::string database : {"mine", "held"}) {
    auto ran = psql_as(database, "alice", "pw-alice", "SELECT current_user || ',' || session_user");
    EXPECT_EQ(ran.exit_code, 0) << ran.output;
    EXPECT_EQ(ran.output, "alice,alice\n") << database;
    ran = psql_as(database, "bob", "pw-bob", "SELECT current_user || ',' || session_user");
    EXPECT_EQ(ran.exit_code, 0) << ran.output;
    EXPECT_EQ(ran.output, "bob,bob\n") << database;
  }
  // The entry that names a role still runs everything as it.
  auto ran = psql_as("shared", "alice", "pw-alice", "SELECT current_user");
  EXPECT_EQ(ran.output, "postgres\n") << ran.output;

  // Each role's server connections are its own: pgvigil's backends log in as alice and bob.
  ASSERT_TRUE(wait_until(
      [&] {
        return pg_->query_value(
                   "SELECT count(DISTINCT usename) FROM pg_stat_activity WHERE "
                   "application_name = '" +
                   app_name_ + "' AND usename IN ('alice', 'bob')") == "2";
      },
      seconds(10)));

  // Metrics and /readyz say whose pool it is.
  ASSERT_TRUE(wait_until(
      [&] {
        return metric("pgvigil_server_connections",
                      {{"pool", "mine"}, {"user", "alice"}, {"state", "idle"}}) >= 1;
      },
      seconds(10)))
      << metrics_page();
  EXPECT_GE(
      metric("pgvigil_server_connections", {{"pool", "mine"}, {"user", "bob"}, {"state", "idle"}}),
      1);
  const auto ready = test::http_get(kHost, admin_port_, "/readyz");
  EXPECT_EQ(ready.status, 200);
  EXPECT_TRUE(contains(ready.body, "pool mine (user alice): ")) << ready.body;
  EXPECT_TRUE(contains(ready.body, "pool held (user bob): ")) << ready.body;

  // A wrong password is still refused by pgvigil itself.
  ran = psql_as("mine", "alice", "wrong", "SELECT 1");
  EXPECT_NE(ran.exit_code, 0);
  EXPECT_TRUE(contains(ran.output, "password authentication failed for user \"alice\""))
      << ran.output;
}

TEST_F(UserPoolsPgTest, ARoleWithOnlyAVerifierLogsInWithWhatItsLoginProved) {
  start();
  // carol's entry is the server's own verifier: her SCRAM login gives pgvigil the key it logs
  // in to the server with.
  auto ran = psql_as("mine", "carol", "pw-carol", "SELECT current_user");
  EXPECT_EQ(ran.exit_code, 0) << ran.output;
  EXPECT_EQ(ran.output, "carol\n");
  EXPECT_TRUE(contains(test::http_get(kHost, admin_port_, "/readyz").body, "(user carol)"));

  // A trust login proves nothing pgvigil could repeat to the server.
  ran = psql_as("open", "carol", "", "SELECT 1");
  EXPECT_NE(ran.exit_code, 0);
  EXPECT_TRUE(contains(ran.output,
                       "pgvigil has no way to log in to database \"open\" as \"carol\""))
      << ran.output;
  EXPECT_EQ(psql_as("shared", "carol", "pw-carol", "SELECT 1").exit_code, 0)
      << "a database with a role of its own takes her";
  // Refused clients leave no pool behind.
  EXPECT_FALSE(contains(test::http_get(kHost, admin_port_, "/readyz").body, "open (user carol)"));
}

TEST_F(UserPoolsPgTest, ARolesPoolKeepsNoIdleConnectionsOnceItsClientsAreGone) {
  // min_idle warms the database's pools, not each role's: a role that logged in once must not
  // hold server connections for good (50 roles with min_idle 2 would fill max_connections).
  start();
  auto ran = psql_as("brief", "bob", "pw-bob", "SELECT current_user");
  ASSERT_EQ(ran.exit_code, 0) << ran.output;
  EXPECT_EQ(ran.output, "bob\n");
  ASSERT_TRUE(wait_until([&] { return idle_of("brief", "bob") == 0 && backends_of("bob") == "0"; },
                         seconds(15)))
      << "bob's pool still holds " << idle_of("brief", "bob") << " idle connection(s) and "
      << backends_of("bob") << " backend(s) after idle_timeout";
  EXPECT_GE(metric("pgvigil_evictions_total",
                   {{"pool", "brief"}, {"user", "bob"}, {"reason", "idle_timeout"}}),
            1)
      << "closed by idle_timeout, not otherwise\n"
      << metrics_page();

  // His next login opens one again.
  ran = psql_as("brief", "bob", "pw-bob", "SELECT current_user");
  EXPECT_EQ(ran.exit_code, 0) << ran.output;
  EXPECT_EQ(ran.output, "bob\n");
}

}  // namespace
}  // namespace pgvigil::testing
