// TLS between clients and pgvigil (listen.tls, databases.<name>.tls_mode), with real clients: psql,
// psycopg 3, pgbench and libpq verify pgvigil's certificate against a CA the test makes
// (sslmode=verify-full), large results, large requests and COPY cross the relay over TLS, a plain
// client is refused where TLS is required, client certificates are checked under verify-ca and
// verify-full, and a certificate replaced on disk reaches new clients at a reload while a TLS
// session keeps running.

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>

#include "tests/proxy/pq_client.hpp"
#include "tests/proxy/proxy_pg_fixture.hpp"
#include "tests/proxy/raw_pg_connection.hpp"
#include "tests/support/test_certificates.hpp"
#include "tests/support/wait_until.hpp"

namespace pgvigil::testing {
namespace {

namespace fs = std::filesystem;

class ClientTlsPgTest : public ProxyPgFixture {
 protected:
  void SetUp() override {
    ProxyPgFixture::SetUp();
    ca_ = std::make_unique<TestCertificateAuthority>(work_->path(), "main");
    server_ = ca_->issue("server", "127.0.0.1", "IP:127.0.0.1,DNS:localhost");
  }

  // The listen.tls map: pgvigil's certificate, the CA of client certificates, the mode.
  std::string tls_listen(const std::string& mode = "allow") const {
    return "tls: {cert_file: \"" + server_.cert.string() + "\", key_file: \"" +
           server_.key.string() + "\", ca_file: \"" + ca_->cert().string() + "\", mode: " + mode +
           "}";
  }

  // libpq parameters that verify pgvigil's certificate and host name against `root`.
  std::string tls_conninfo(const std::string& database, const std::string& extra = "",
                           const fs::path& root = {}) const {
    return "host=127.0.0.1 port=" + std::to_string(port_) + " dbname=" + database +
           " user=postgres connect_timeout=5 sslmode=verify-full sslrootcert=" +
           (root.empty() ? ca_->cert() : root).string() + (extra.empty() ? "" : " " + extra);
  }

  Ran psql_with(const std::string& conninfo, const std::string& commands) {
    return run_shell("psql -X -A -t -v ON_ERROR_STOP=1 '" + conninfo + "' " + commands + " 2>&1");
  }

  std::unique_ptr<TestCertificateAuthority> ca_;
  CertificatePair server_;
};

TEST_F(ClientTlsPgTest, PsqlPsycopgAndPgbenchWorkOverVerifiedTls) {
  ensure_bench_database();
  start_daemon({{{"app"}, {"bench_tx", "transaction", "bench"}}, "trust", "", tls_listen()});

  auto ran = psql_with(tls_conninfo("app"), "-c '\\conninfo' -c 'SELECT 40 + 2'");
  ASSERT_EQ(ran.exit_code, 0) << ran.output;
  EXPECT_TRUE(contains(ran.output, "SSL connection (protocol: TLSv1.")) << ran.output;
  EXPECT_TRUE(contains(ran.output, "42")) << ran.output;

  // 5 MB of result: many TLS records, writes the client's socket cannot take at once.
  ran = psql_with(tls_conninfo("app"),
                  "-c \"SELECT repeat('x', 1000) FROM generate_series(1, 5000)\" | "
                  "awk '{n += length($0)} END {print NR, n}'");
  ASSERT_EQ(ran.exit_code, 0) << ran.output;
  EXPECT_TRUE(contains(ran.output, "5000 5000000")) << ran.output;

  // A 1 MB request: read in many records, some decrypted bytes waiting in OpenSSL (SSL_pending).
  write_file(work_->path() / "large.sql", "SELECT length('" + std::string(1000000, 'y') + "');\n");
  ran = psql_with(tls_conninfo("app"), "-f " + (work_->path() / "large.sql").string());
  ASSERT_EQ(ran.exit_code, 0) << ran.output.substr(0, 500);
  EXPECT_TRUE(contains(ran.output, "1000000")) << ran.output.substr(0, 500);

  ran = psql_with(tls_conninfo("app"),
                  "-c 'COPY (SELECT g, md5(g::text) FROM generate_series(1, 20000) g) TO STDOUT' "
                  "| wc -l");
  ASSERT_EQ(ran.exit_code, 0) << ran.output;
  EXPECT_TRUE(contains(ran.output, "20000")) << ran.output;

  write_file(work_->path() / "client.py", R"PY(
import sys
import psycopg
with psycopg.connect(sys.argv[1]) as conn:
    assert conn.pgconn.ssl_in_use, "psycopg is not on TLS"
    with conn.cursor() as cur:
        cur.execute("SELECT sum(g) FROM generate_series(1, %s) g", (1000,))
        assert cur.fetchone()[0] == 500500
        cur.executemany("SELECT %s::int", [(i,) for i in range(50)])
    conn.execute("SELECT pg_sleep(0)")
print("psycopg over TLS OK")
)PY");
  ran = run_shell("/usr/bin/python3 client.py '" + tls_conninfo("app") + "' 2>&1");
  EXPECT_EQ(ran.exit_code, 0) << ran.output;
  EXPECT_TRUE(contains(ran.output, "psycopg over TLS OK")) << ran.output;

  // Clients relayed over TLS in parallel, extended protocol, both workers.
  ran = run_shell("PGSSLMODE=verify-full PGSSLROOTCERT=" + ca_->cert().string() + " " +
                      pgbench("bench_tx", "-S -T 2 -c 4 -j 2 -M extended"),
                  seconds(30));
  EXPECT_EQ(ran.exit_code, 0) << ran.output;
  EXPECT_FALSE(contains(ran.output, "aborted")) << ran.output;
  EXPECT_TRUE(contains(ran.output, "number of failed transactions: 0")) << ran.output;
}

TEST_F(ClientTlsPgTest, PlainClientIsRefusedWhereTlsIsRequired) {
  Database secure{"secure"};
  secure.tls_mode = "require";
  start_daemon({{secure, {"open"}}, "trust", "", tls_listen()});

  // What a plain client is told: 28000 and how to connect, as an ErrorResponse before closing.
  RawPgConnection raw(port_);
  ASSERT_TRUE(raw.send(startup_packet({{"user", "postgres"}, {"database", "secure"}})));
  const auto error = raw.read_until('E', seconds(5));
  ASSERT_TRUE(error) << "no ErrorResponse";
  auto fields = error_fields(error->payload);
  EXPECT_EQ(fields['C'], "28000");
  EXPECT_TRUE(contains(fields['M'], "requires TLS")) << fields['M'];
  EXPECT_TRUE(contains(fields['H'], "sslmode=require")) << fields['H'];
  EXPECT_TRUE(raw.closed_by_server_within(seconds(5)));

  auto ran = psql_with(conninfo("secure"), "-c 'SELECT 1'");
  EXPECT_NE(ran.exit_code, 0) << ran.output;
  EXPECT_TRUE(contains(ran.output, "requires TLS")) << ran.output;

  ran = psql_with(tls_conninfo("secure"), "-c 'SELECT 1'");
  EXPECT_EQ(ran.exit_code, 0) << ran.output;
  ran = psql_with(conninfo("open"), "-c 'SELECT 1'");
  EXPECT_EQ(ran.exit_code, 0) << "a database that allows plain clients: " << ran.output;
  // The Unix socket is local: libpq never asks for TLS there, and require does not apply.
  ran = psql_with("host=" + socket_dir().string() + " port=" + std::to_string(port_) +
                      " dbname=secure user=postgres",
                  "-c 'SELECT 1'");
  EXPECT_EQ(ran.exit_code, 0) << ran.output;
}

TEST_F(ClientTlsPgTest, ClientCertificatesAreCheckedUnderVerifyCaAndVerifyFull) {
  Database full{"full"};
  full.tls_mode = "verify-full";
  Database ca_only{"ca_only"};
  ca_only.tls_mode = "verify-ca";
  start_daemon({{full, ca_only}, "trust", "", tls_listen()});

  const auto postgres = ca_->issue("client-postgres", "postgres");
  const auto mallory = ca_->issue("client-mallory", "mallory");
  const TestCertificateAuthority other(work_->path(), "other");
  const auto foreign = other.issue("foreign-postgres", "postgres");
  const auto with = [](const CertificatePair& pair) {
    return "sslcert=" + pair.cert.string() + " sslkey=" + pair.key.string();
  };
  // libpq would send ~/.postgresql/postgresql.crt when there is one: a path that does not exist
  // makes "no certificate" explicit.
  const std::string none = "sslcert=/nonexistent.crt sslkey=/nonexistent.key";

  auto ran = psql_with(tls_conninfo("full", with(postgres)), "-c 'SELECT current_user'");
  EXPECT_EQ(ran.exit_code, 0) << ran.output;
  EXPECT_TRUE(contains(ran.output, "postgres")) << ran.output;

  ran = psql_with(tls_conninfo("full", none), "-c 'SELECT 1'");
  EXPECT_NE(ran.exit_code, 0);
  EXPECT_TRUE(contains(ran.output, "requires a valid client certificate")) << ran.output;

  ran = psql_with(tls_conninfo("full", with(mallory)), "-c 'SELECT 1'");
  EXPECT_NE(ran.exit_code, 0);
  EXPECT_TRUE(contains(ran.output, "common name is \"mallory\"")) << ran.output;

  ran = psql_with(tls_conninfo("full", with(foreign)), "-c 'SELECT 1'");
  EXPECT_NE(ran.exit_code, 0);
  EXPECT_TRUE(contains(ran.output, "client certificate not accepted")) << ran.output;

  // verify-ca: any certificate of the CA, whatever its name.
  ran = psql_with(tls_conninfo("ca_only", with(mallory)), "-c 'SELECT 1'");
  EXPECT_EQ(ran.exit_code, 0) << ran.output;
  ran = psql_with(tls_conninfo("ca_only", none), "-c 'SELECT 1'");
  EXPECT_NE(ran.exit_code, 0);
  EXPECT_TRUE(contains(ran.output, "requires a valid client certificate")) << ran.output;
  ran = psql_with(tls_conninfo("ca_only", with(foreign)), "-c 'SELECT 1'");
  EXPECT_NE(ran.exit_code, 0);
  EXPECT_TRUE(contains(ran.output, "client certificate not accepted")) << ran.output;
}

TEST_F(ClientTlsPgTest, CertificateReplacedAndReloadedWhileASessionRuns) {
  start_daemon({{{"app"}}, "trust", "", tls_listen()});
  auto session = pq_connect(tls_conninfo("app"));
  ASSERT_TRUE(pq_ok(session)) << PQerrorMessage(session.get());
  ASSERT_EQ(PQsslInUse(session.get()), 1);
  ASSERT_EQ(pq_value(session, "SELECT 1"), "1");

  // The renewed certificate comes from another CA, so a client can tell which one it was shown.
  const TestCertificateAuthority renewed_ca(work_->path(), "renewed");
  const auto renewed = renewed_ca.issue("server-renewed", "127.0.0.1", "IP:127.0.0.1");
  fs::copy_file(renewed.cert, server_.cert, fs::copy_options::overwrite_existing);
  fs::copy_file(renewed.key, server_.key, fs::copy_options::overwrite_existing);
  ASSERT_TRUE(daemon_->send_signal(SIGHUP));
  ASSERT_TRUE(daemon_->wait_for_log("client TLS certificate loaded", seconds(10)))
      << daemon_->log_text();

  std::string error;
  EXPECT_EQ(pq_value(session, "SELECT 2", &error), "2") << "the session begun before: " << error;
  EXPECT_EQ(PQsslInUse(session.get()), 1);
  auto old_root = pq_connect(tls_conninfo("app"));
  EXPECT_FALSE(pq_ok(old_root)) << "a new client was shown the old certificate";
  auto new_root = pq_connect(tls_conninfo("app", "", renewed_ca.cert()));
  EXPECT_TRUE(pq_ok(new_root)) << PQerrorMessage(new_root.get());

  // A broken certificate at the next reload is refused, and the last good one stays.
  write_file(server_.cert, "not a certificate\n");
  ASSERT_TRUE(daemon_->send_signal(SIGHUP));
  ASSERT_TRUE(
      daemon_->wait_for_log("rejected, still running the previous configuration", seconds(10)))
      << daemon_->log_text();
  EXPECT_TRUE(contains(daemon_->log_text(), "cannot load certificate " + server_.cert.string()))
      << daemon_->log_text();
  auto after_refusal = pq_connect(tls_conninfo("app", "", renewed_ca.cert()));
  EXPECT_TRUE(pq_ok(after_refusal)) << PQerrorMessage(after_refusal.get());
  EXPECT_EQ(pq_value(session, "SELECT 3", &error), "3") << error;
}

TEST_F(ClientTlsPgTest, BytesSentInTheClearAfterSslRequestAreRefused) {
  start_daemon({{{"app"}}, "trust", "", tls_listen()});
  // A StartupMessage right behind the SSLRequest, before the 'S': whoever sits on the path
  // could have put it there, so it must not count as sent over TLS.
  RawPgConnection raw(port_);
  ASSERT_TRUE(raw.send(be32(8) + be32(80877103) +
                       startup_packet({{"user", "postgres"}, {"database", "app"}})));
  const auto error = raw.read_until('E', seconds(5));
  ASSERT_TRUE(error) << "no ErrorResponse";
  auto fields = error_fields(error->payload);
  EXPECT_EQ(fields['C'], "08P01");
  EXPECT_TRUE(contains(fields['M'], "unencrypted data after SSL request")) << fields['M'];
}

}  // namespace
}  // namespace pgvigil::testing
