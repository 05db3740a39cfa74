// Per-user pools without a password (issue 16, item 3): with auth.query and no users file,
// pgvigil logs in to the server as each client's own role with what the client's login proved
// (proxy/login/: the SCRAM ClientKey, or the md5 hash), through the real binary, psql and
// libpq. The server takes these roles only over TLS, with SCRAM or md5 (hba), and pgvigil
// verifies its certificate (verify-full), so the test passes only if pgvigil's own login does
// TLS and each method right. Also: a cancel reaches a backend logged in that way, and a
// password changed on the server is what new server connections log in with once a client
// has proved it.

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <csignal>
#include <memory>
#include <sstream>
#include <string>

#include "tests/proxy/proxy_pg_fixture.hpp"
#include "tests/support/test_certificates.hpp"
#include "tests/support/wait_until.hpp"

namespace pgvigil::testing {
namespace {

class LoginProofPgTest : public ProxyPgFixture {
 protected:
  static void SetUpTestSuite() {
    certs_ = std::make_unique<TempDir>("pgvigil-login-");
    const TestCertificateAuthority ca(certs_->path(), "server");
    const auto server = ca.issue("server", "127.0.0.1", "IP:127.0.0.1");
    PgCluster::Options options;
    options.max_connections = 60;
    options.conf_lines = {"ssl = on"};
    options.data_files = {{"server.crt", read_file(server.cert)},
                          {"server.key", read_file(server.key)}};
    options.hba_lines = {"hostnossl all alice,bob,pgvigil_auth 127.0.0.1/32 reject",
                         "hostssl all alice,pgvigil_auth 127.0.0.1/32 scram-sha-256",
                         "hostssl all bob 127.0.0.1/32 md5"};
    pg_ = PgCluster::start_new(options);
    pg_->execute("CREATE ROLE pgvigil_auth LOGIN SUPERUSER PASSWORD 'auth-secret'");
    pg_->execute("CREATE ROLE alice LOGIN PASSWORD 'pw-alice'");  // SCRAM: the default
    pg_->execute("SET password_encryption = 'md5'; CREATE ROLE bob LOGIN PASSWORD 'pw-bob'");
    pg_->execute("GRANT pg_read_all_stats TO alice, bob");
    ca_cert_ = ca.cert();
  }
  static void TearDownTestSuite() {
    pg_.reset();
    certs_.reset();
  }

  void start(const std::string& cache_time = "60s") {
    write_file(work_->path() / "auth-password", "auth-secret\n");
    ProxyOptions options{{{"app"}, {"legacy"}, {"held"}}, "scram-sha-256", ""};
    options.auth_extra = "query: {user: pgvigil_auth, password_file: \"" +
                         (work_->path() / "auth-password").string() +
                         "\", cache_time: " + cache_time + "}";
    options.databases[1].auth_method = "md5";
    options.databases[2].pool_mode = "session";
    for (auto& database : options.databases) {
      database.user_pools = true;
      database.server_tls = {"sslmode: verify-full", "sslrootcert: " + ca_cert_.string()};
    }
    start_daemon(options);
  }

  // Backends logged in as `user` over TLS: pgvigil's (only pgvigil connects as these roles;
  // a client's application_name may have been set on them, so it cannot tell).
  int tls_backends_of(const std::string& user) const {
    return std::stoi(pg_->query_value(
        "SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE "
        "a.usename = '" +
        user + "' AND s.ssl"));
  }

  std::string backend_pids_of(const std::string& user) const {
    return pg_->query_value(
        "SELECT string_agg(pid::text, ',' ORDER BY pid) FROM pg_stat_activity "
        "WHERE usename = '" +
        user + "'");
  }

  static std::unique_ptr<TempDir> certs_;
  static std::filesystem::path ca_cert_;
};

std::unique_ptr<TempDir> LoginProofPgTest::certs_;
std::filesystem::path LoginProofPgTest::ca_cert_;

TEST_F(LoginProofPgTest, TwoRolesEachRunAsThemselvesWithoutAPasswordInPgvigil) {
  start();
  const std::string who = "SELECT current_user || ',' || session_user";
  auto ran = psql_as("app", "alice", "pw-alice", who);
  EXPECT_EQ(ran.exit_code, 0) << ran.output;
  EXPECT_EQ(ran.output, "alice,alice\n") << "SCRAM pass-through";
  ran = psql_as("legacy", "bob", "pw-bob", who);
  EXPECT_EQ(ran.exit_code, 0) << ran.output;
  EXPECT_EQ(ran.output, "bob,bob\n") << "md5 pass-through";
  ran = psql_as("held", "alice", "pw-alice", who);
  EXPECT_EQ(ran.output, "alice,alice\n") << "session pooling: " << ran.output;

  // Their server connections are their own, logged in over the verified TLS link.
  EXPECT_TRUE(wait_until([&] { return tls_backends_of("alice") >= 1; }, seconds(10)));
  EXPECT_TRUE(wait_until([&] { return tls_backends_of("bob") >= 1; }, seconds(10)));

  // A proof of one role never logs in as another, and a wrong password gets nothing.
  ran = psql_as("app", "bob", "pw-bob", "SELECT 1");
  EXPECT_NE(ran.exit_code, 0) << "bob's md5 hash cannot answer SCRAM";
  ran = psql_as("app", "alice", "wrong", "SELECT 1");
  EXPECT_TRUE(contains(ran.output, "password authentication failed for user \"alice\""))
      << ran.output;

  // A reload remakes every role's route; the same proof keeps the pool's connections.
  const std::string alice_backends = backend_pids_of("alice");
  ASSERT_TRUE(daemon_->send_signal(SIGHUP));
  ASSERT_TRUE(daemon_->wait_for_log("config reloaded", seconds(10))) << daemon_->log_text();
  EXPECT_EQ(psql_as("app", "alice", "pw-alice", "SELECT 1").output, "1\n");
  // Each backend alice had is still there (the pools may have opened more meanwhile).
  const std::string after_reload = "," + backend_pids_of("alice") + ",";
  std::stringstream before(alice_backends);
  for (std::string pid; std::getline(before, pid, ',');) {
    EXPECT_TRUE(contains(after_reload, "," + pid + ",")) << pid << " gone: " << daemon_->log_text();
  }

  // The pool's own statements (pings, the reset query) and a stream of queries go through it.
  ran = psql_as("app", "alice", "pw-alice",
                "SET application_name = 'x'; SELECT count(*) FROM generate_series(1, 100000)");
  EXPECT_EQ(ran.output, "SET\n100000\n") << ran.output;
}

TEST_F(LoginProofPgTest, ACancelReachesABackendLoggedInWithAProof) {
  start();
  const std::string conninfo = "host=127.0.0.1 port=" + std::to_string(port_) +
                               " dbname=app user=alice password=pw-alice sslmode=disable";
  std::unique_ptr<PGconn, decltype(&PQfinish)> client(PQconnectdb(conninfo.c_str()), &PQfinish);
  ASSERT_EQ(PQstatus(client.get()), CONNECTION_OK) << PQerrorMessage(client.get());
  ASSERT_EQ(PQsendQuery(client.get(), "SELECT pg_sleep(60)"), 1);
  ASSERT_TRUE(wait_until(
      [&] {
        return pg_->query_value(
                   "SELECT count(*) FROM pg_stat_activity WHERE usename = 'alice' "
                   "AND query = 'SELECT pg_sleep(60)' AND state = 'active'") == "1";
      },
      seconds(10)));
  const auto sent = Clock::now();
  PGcancel* cancel = PQgetCancel(client.get());
  char error[256] = {};
  EXPECT_EQ(PQcancel(cancel, error, sizeof error), 1) << error;
  PQfreeCancel(cancel);
  std::string sqlstate;
  while (PGresult* result = PQgetResult(client.get())) {
    if (const char* code = PQresultErrorField(result, PG_DIAG_SQLSTATE)) sqlstate = code;
    PQclear(result);
  }
  EXPECT_EQ(sqlstate, "57014") << "canceled by the server";
  EXPECT_LT(elapsed_ms(sent), 10000);
}

TEST_F(LoginProofPgTest, ANewPasswordIsWhatNewServerConnectionsLogInWith) {
  pg_->execute("CREATE ROLE carol LOGIN PASSWORD 'first'");
  pg_->execute("GRANT pg_read_all_stats TO carol");
  start("1s");
  ASSERT_EQ(psql_as("app", "carol", "first", "SELECT 1").exit_code, 0);
  // carol's pool is open, logged in with the first password's keys.
  ASSERT_TRUE(wait_until([&] { return tls_backends_of("carol") >= 1; }, seconds(10)));

  pg_->execute("ALTER ROLE carol PASSWORD 'second'");
  // Once pgvigil's cached verifier is older than cache_time, the new password logs in.
  Ran ran;
  ASSERT_TRUE(wait_until(
      [&] {
        ran = psql_as("app", "carol", "second", "SELECT 1");
        return ran.exit_code == 0;
      },
      seconds(10)))
      << ran.output;
  // Every server connection the pool had goes; the ones it opens now need the new keys.
  pg_->execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'carol'");
  ran = psql_as("app", "carol", "second", "SELECT current_user");
  EXPECT_EQ(ran.output, "carol\n") << ran.output << daemon_->log_text();
  EXPECT_TRUE(wait_until([&] { return tls_backends_of("carol") >= 1; }, seconds(10)))
      << daemon_->log_text();
  pg_->execute("DROP OWNED BY carol; DROP ROLE carol");
}

}  // namespace
}  // namespace pgvigil::testing
