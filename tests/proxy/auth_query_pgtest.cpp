// auth.query through the real pgvigil binary with psql and no users file: clients' secrets are
// looked up on the server by a dedicated role (through a SECURITY DEFINER function, as a
// production setup would, or pg_shadow by default), for SCRAM and md5 roles; a password changed
// and a role dropped on the server take effect once the cached answer is older than cache_time;
// a lookup that cannot reach the server is an error the client can read, mended by a reload.

#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <string>
#include <thread>
#include <vector>

#include "tests/proxy/proxy_pg_fixture.hpp"
#include "tests/support/wait_until.hpp"

namespace pgvigil::testing {
namespace {

// What a production auth role may do: run this function, and nothing else.
constexpr const char* kLookupFunction =
    "CREATE FUNCTION public.pgvigil_lookup(name text, OUT usename text, OUT passwd text) "
    "RETURNS record LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS "
    "$$ SELECT usename::text, passwd FROM pg_shadow WHERE usename = name $$";

class AuthQueryPgTest : public ProxyPgFixture {
 protected:
  static void SetUpTestSuite() {
    PgCluster::Options options;
    options.max_connections = 60;
    // The auth role must bring its password: pgvigil has to send the one it was given.
    options.hba_lines = {"host all pgvigil_auth 127.0.0.1/32 scram-sha-256"};
    pg_ = PgCluster::start_new(options);
    pg_->execute("CREATE ROLE pgvigil_auth LOGIN PASSWORD 'auth-secret'");
    pg_->execute(kLookupFunction);
    pg_->execute("REVOKE ALL ON FUNCTION public.pgvigil_lookup(text) FROM PUBLIC");
    pg_->execute("GRANT EXECUTE ON FUNCTION public.pgvigil_lookup(text) TO pgvigil_auth");
  }

  // The auth role's password in a file; the auth map's query section, with `extra` keys.
  std::string auth_query(const std::string& password, const std::string& extra) {
    write_file(work_->path() / "auth-password", password + "\n");
    return "query: {user: pgvigil_auth, password_file: \"" +
           (work_->path() / "auth-password").string() +
           "\", sql: \"SELECT * FROM public.pgvigil_lookup($1)\"" +
           (extra.empty() ? "" : ", " + extra) + "}";
  }

  ProxyOptions options(const std::string& query) {
    ProxyOptions options{{{"app"}, {"legacy"}}, "scram-sha-256", ""};
    options.databases[1].auth_method = "md5";
    options.auth_extra = query;
    return options;
  }

  Ran connect(const std::string& database, const std::string& user, const std::string& password) {
    return run_shell("PGPASSWORD='" + password +
                     "' psql -X -A -t -v ON_ERROR_STOP=1 'host=127.0.0.1 port=" +
                     std::to_string(port_) + " dbname=" + database + " user=" + user +
                     " connect_timeout=5 sslmode=disable' -c 'SELECT 1' 2>&1");
  }

  static bool refused_as_wrong_password(const Ran& ran, const std::string& user) {
    return ran.exit_code != 0 &&
           contains(ran.output, "password authentication failed for user \"" + user + "\"");
  }

  int auth_connections() const {
    return std::stoi(pg_->query_value(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgvigil auth.query'"));
  }
};

TEST_F(AuthQueryPgTest, RolesLogInWithTheSecretsTheServerHolds) {
  pg_->execute("CREATE ROLE alice LOGIN PASSWORD 'pw-alice'");  // SCRAM, the server's default
  pg_->execute("SET password_encryption = 'md5'; CREATE ROLE bob LOGIN PASSWORD 'pw-bob'");
  start_daemon(options(auth_query("auth-secret", "cache_time: 60s")));

  auto ran = connect("app", "alice", "pw-alice");
  EXPECT_EQ(ran.exit_code, 0) << "SCRAM with the server's verifier: " << ran.output;
  ran = connect("legacy", "bob", "pw-bob");
  EXPECT_EQ(ran.exit_code, 0) << "md5 with the server's hash: " << ran.output;
  EXPECT_TRUE(refused_as_wrong_password(connect("app", "bob", "pw-bob"), "bob"))
      << "an md5 hash cannot answer SCRAM, as in PostgreSQL";
  EXPECT_TRUE(refused_as_wrong_password(connect("app", "alice", "wrong"), "alice"));
  EXPECT_TRUE(refused_as_wrong_password(connect("legacy", "bob", "wrong"), "bob"));
  EXPECT_TRUE(refused_as_wrong_password(connect("app", "nobody", "pw"), "nobody"))
      << "an unknown name is refused as a wrong password";
  EXPECT_TRUE(refused_as_wrong_password(connect("legacy", "alice", "pw-alice"), "alice"))
      << "a SCRAM verifier cannot answer md5, as in PostgreSQL";

  // Sixteen logins at once, of two roles: one lookup connection serves them all.
  std::atomic<int> failures{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 16; ++i) {
    clients.emplace_back([&, i] {
      const bool ok = i % 2 == 0 ? connect("app", "alice", "pw-alice").exit_code == 0
                                 : connect("legacy", "bob", "pw-bob").exit_code == 0;
      if (!ok) ++failures;
    });
  }
  for (auto& client : clients) client.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_LE(auth_connections(), 2) << "one lookup connection per database";
  EXPECT_GE(auth_connections(), 1);
  pg_->execute("DROP ROLE alice; DROP ROLE bob");
}

TEST_F(AuthQueryPgTest, PasswordChangeAndDroppedRoleTakeEffectAfterTheCacheTime) {
  pg_->execute("CREATE ROLE carol LOGIN PASSWORD 'first'");
  constexpr auto kCacheTime = seconds(2);
  start_daemon(options(auth_query("auth-secret", "cache_time: 2s")));
  ASSERT_EQ(connect("app", "carol", "first").exit_code, 0);
  const auto cached = Clock::now();

  pg_->execute("ALTER ROLE carol PASSWORD 'second'");
  // Within the cache time the answer pgvigil has is still the old one (checked only while the
  // test is surely inside it).
  const auto right_after = connect("app", "carol", "first");
  if (Clock::now() - cached < kCacheTime / 2) {
    EXPECT_EQ(right_after.exit_code, 0) << "the cached secret is used: " << right_after.output;
  }
  const auto changed = Clock::now();
  ASSERT_TRUE(wait_until([&] { return connect("app", "carol", "second").exit_code == 0; },
                         seconds(10), milliseconds(100)))
      << "the new password is never accepted";
  EXPECT_LE(Clock::now() - changed, kCacheTime + seconds(2)) << "later than the cache time";
  EXPECT_TRUE(refused_as_wrong_password(connect("app", "carol", "first"), "carol"))
      << "the old password still works after the cache time";

  pg_->execute("DROP ROLE carol");
  const auto dropped = Clock::now();
  ASSERT_TRUE(wait_until(
      [&] { return refused_as_wrong_password(connect("app", "carol", "second"), "carol"); },
      seconds(10), milliseconds(100)))
      << "the dropped role can still log in";
  EXPECT_LE(Clock::now() - dropped, kCacheTime + seconds(2)) << "later than the cache time";
}

TEST_F(AuthQueryPgTest, DefaultQueryReadsPgShadow) {
  // A superuser auth role may read pg_shadow itself: the default query.
  pg_->execute("CREATE ROLE dora LOGIN PASSWORD 'pw-dora'");
  pg_->execute("CREATE ROLE pgvigil_super LOGIN SUPERUSER");
  start_daemon(options("query: {user: pgvigil_super}"));
  EXPECT_EQ(connect("app", "dora", "pw-dora").exit_code, 0);
  EXPECT_TRUE(refused_as_wrong_password(connect("app", "dora", "wrong"), "dora"));
  pg_->execute("DROP ROLE dora");
}

TEST_F(AuthQueryPgTest, ALookupThatCannotReachTheServerIsAnErrorAReloadMends) {
  pg_->execute("CREATE ROLE erin LOGIN PASSWORD 'pw-erin'");
  start_daemon(options(auth_query("not-the-password", "")));
  auto ran = connect("app", "erin", "pw-erin");
  EXPECT_NE(ran.exit_code, 0);
  EXPECT_TRUE(contains(ran.output, "pgvigil could not look up user \"erin\" on the server"))
      << ran.output;
  EXPECT_TRUE(daemon_->wait_for_log("auth.query could not connect as \"pgvigil_auth\"", seconds(5)))
      << daemon_->log_text();
  EXPECT_FALSE(contains(daemon_->log_text(), "not-the-password")) << "a secret was logged";

  write_file(work_->path() / "auth-password", "auth-secret\n");
  ASSERT_TRUE(daemon_->send_signal(SIGHUP));
  ASSERT_TRUE(daemon_->wait_for_log("config reloaded", seconds(10))) << daemon_->log_text();
  ran = connect("app", "erin", "pw-erin");
  EXPECT_EQ(ran.exit_code, 0) << "the reloaded password is used: " << ran.output;
  pg_->execute("DROP ROLE erin");
}

}  // namespace
}  // namespace pgvigil::testing
