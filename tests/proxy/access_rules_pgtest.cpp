// Access rules (auth.hba_file) through the real pgvigil binary with psql: each method (trust,
// scram-sha-256, md5, cert, reject), a CIDR that does not match, hostssl and hostnossl, the
// Unix socket as local, and a client no rule matches; SCRAM with channel binding over TLS.

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "tests/proxy/proxy_pg_fixture.hpp"
#include "tests/support/test_certificates.hpp"

namespace pgvigil::testing {
namespace {

class AccessRulesPgTest : public ProxyPgFixture {
 protected:
  // psql as `user` with `password` over TCP (sslmode and certificates in `extra`).
  Ran connect(const std::string& database, const std::string& user, const std::string& password,
              const std::string& extra = "sslmode=disable") {
    return run_shell("PGPASSWORD='" + password +
                     "' psql -X -A -t -v ON_ERROR_STOP=1 'host=127.0.0.1 port=" +
                     std::to_string(port_) + " dbname=" + database + " user=" + user +
                     " connect_timeout=5 " + extra + "' -c 'SELECT 1' 2>&1");
  }
};

TEST_F(AccessRulesPgTest, EveryKindOfRuleInTheOrderWritten) {
  const TestCertificateAuthority ca(work_->path(), "rules");
  const auto server = ca.issue("server", "127.0.0.1", "IP:127.0.0.1");
  const auto client = ca.issue("client-postgres", "postgres");
  write_file(work_->path() / "hba.conf",
             "# TYPE    DATABASE USER     ADDRESS        METHOD\n"
             "local     all      all                     trust\n"
             "hostssl   certdb   all      127.0.0.1/32   cert\n"
             "host      app      alice    127.0.0.1/32   scram-sha-256\n"
             "host      app      bob      127.0.0.1      md5\n"
             "host      app      carol    10.0.0.0/8     trust   # not where carol comes from\n"
             "host      app      mallory  all            reject\n"
             "host      app      dave     ::1/128        trust   # IPv6 only\n"
             "hostnossl plain    all      127.0.0.0/8    trust\n");
  ProxyOptions options{{{"app"}, {"certdb"}, {"plain"}},
                       "trust",
                       "\"alice\" \"pw-alice\"\n\"bob\" \"pw-bob\"\n",
                       "tls: {cert_file: \"" + server.cert.string() + "\", key_file: \"" +
                           server.key.string() + "\", ca_file: \"" + ca.cert().string() + "\"}"};
  options.auth_extra = "hba_file: \"" + (work_->path() / "hba.conf").string() + "\"";
  start_daemon(options);

  EXPECT_EQ(connect("app", "alice", "pw-alice").exit_code, 0) << "scram-sha-256";
  auto ran = connect("app", "alice", "wrong");
  EXPECT_NE(ran.exit_code, 0);
  EXPECT_TRUE(contains(ran.output, "password authentication failed for user \"alice\""))
      << ran.output;
  EXPECT_EQ(connect("app", "bob", "pw-bob").exit_code, 0) << "md5";

  ran = connect("app", "carol", "");
  EXPECT_NE(ran.exit_code, 0) << "10.0.0.0/8 does not hold 127.0.0.1, and no later rule matches";
  EXPECT_TRUE(contains(ran.output, "no pgvigil access rule for host \"127.0.0.1\", user \"carol\""))
      << ran.output;
  ran = connect("app", "dave", "");
  EXPECT_NE(ran.exit_code, 0) << "::1/128 does not hold 127.0.0.1";
  ran = connect("app", "mallory", "");
  EXPECT_NE(ran.exit_code, 0);
  EXPECT_TRUE(
      contains(ran.output, "pgvigil's access rules reject host \"127.0.0.1\", user \"mallory\""))
      << ran.output;

  // local: the Unix socket, whoever the user.
  ran = run_shell("psql -X -A -t -v ON_ERROR_STOP=1 'host=" + socket_dir().string() +
                  " port=" + std::to_string(port_) + " dbname=app user=carol' -c 'SELECT 1' 2>&1");
  EXPECT_EQ(ran.exit_code, 0) << ran.output;

  // cert on hostssl: the certificate is the password.
  const std::string tls = "sslmode=verify-full sslrootcert=" + ca.cert().string();
  EXPECT_EQ(connect("certdb", "postgres", "",
                    tls + " sslcert=" + client.cert.string() + " sslkey=" + client.key.string())
                .exit_code,
            0);
  ran =
      connect("certdb", "postgres", "", tls + " sslcert=/nonexistent.crt sslkey=/nonexistent.key");
  EXPECT_NE(ran.exit_code, 0);
  EXPECT_TRUE(contains(ran.output, "requires a valid client certificate")) << ran.output;
  ran = connect("certdb", "postgres", "");
  EXPECT_NE(ran.exit_code, 0) << "hostssl does not match a plain client";
  EXPECT_TRUE(contains(ran.output, "no pgvigil access rule")) << ran.output;

  // SCRAM over TLS binds to the TLS session (SCRAM-SHA-256-PLUS, tls-server-end-point): libpq
  // checks the server's proof against the certificate it saw, and require refuses anything less.
  EXPECT_EQ(connect("app", "alice", "pw-alice", tls + " channel_binding=require").exit_code, 0)
      << connect("app", "alice", "pw-alice", tls + " channel_binding=require").output;
  ran = connect("app", "alice", "wrong", tls + " channel_binding=require");
  EXPECT_NE(ran.exit_code, 0);
  EXPECT_TRUE(contains(ran.output, "password authentication failed")) << ran.output;

  // hostnossl: in the clear only.
  EXPECT_EQ(connect("plain", "anyone", "").exit_code, 0);
  ran = connect("plain", "anyone", "", tls);
  EXPECT_NE(ran.exit_code, 0) << "hostnossl does not match a TLS client";
  EXPECT_TRUE(contains(ran.output, "TLS")) << ran.output;
}

}  // namespace
}  // namespace pgvigil::testing
