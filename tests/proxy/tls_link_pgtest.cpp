// The relay over a TLS server link: pgvigil reads and writes raw protocol bytes through
// SSL_read/SSL_write on libpq's connection (pool/server_connection.cpp). The server here accepts
// TLS only (hostnossl ... reject), so a plaintext link cannot pass by accident, and pgvigil
// verifies its self-signed certificate (sslmode verify-full). Clients talk to pgvigil in the clear
// with libpq and pgbench; large results and COPY exercise partial SSL reads and writes
// (SSL_pending, WANT_READ/WANT_WRITE). A wrong sslrootcert must be counted as cause="tls".

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "tests/metrics/http_client.hpp"
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

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;

// The binary under test: $PGVIGIL_BINARY when set (to try another build), else the one CMake built.
std::string daemon_binary() {
  const char* path = std::getenv("PGVIGIL_BINARY");
  return path != nullptr && *path != '\0' ? path : PGVIGIL_BINARY;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// A self-signed certificate for 127.0.0.1 made with the openssl CLI: <dir>/<name>.crt, .key.
void make_certificate(const fs::path& dir, const std::string& name) {
  const auto openssl = find_executable("openssl");
  if (!openssl) throw std::runtime_error("openssl CLI not found: run scripts/install-deps.sh");
  const int code = run_process(
      {openssl->string(), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
       name + ".key", "-out", name + ".crt", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext",
       "subjectAltName=IP:127.0.0.1"},
      dir / (name + ".log"), dir, seconds(30));
  if (code != 0) {
    throw std::runtime_error("openssl req failed (" + std::to_string(code) +
                             "): " + file_tail(dir / (name + ".log")));
  }
}

std::optional<fs::path> pgbench_path() {
  std::vector<fs::path> candidates;
  if (const char* dir = std::getenv("PGVIGIL_PG_BINDIR")) candidates.emplace_back(fs::path(dir) / "pgbench");
  for (const char* version : {"17", "16", "15"}) {
    candidates.emplace_back(fs::path("/usr/lib/postgresql") / version / "bin" / "pgbench");
  }
  for (const auto& candidate : candidates) {
    if (fs::exists(candidate)) return candidate;
  }
  return find_executable("pgbench");
}


// The YAML of a daemon serving database "app" from pg over TLS, verified against root_cert.
std::string daemon_config(const PgCluster& pg, std::uint16_t admin_port, std::uint16_t listen_port,
                          const fs::path& root_cert, const std::string& application_name) {
  return "admin: {listen: \"127.0.0.1:" + std::to_string(admin_port) + "\"}\n" +
         "listen: {address: \"127.0.0.1:" + std::to_string(listen_port) + "\"}\n" +
         "pool:\n"
         "  min_idle: 1\n"
         "  max_size: 8\n"
         "  checkout_timeout: 2s\n"
         "  reconnect: {initial_delay: 100ms, max_delay: 500ms, max_delay_while_clients_wait: "
         "100ms}\n"
         "databases:\n"
         "  app:\n"
         "    host: 127.0.0.1\n"
         "    port: " +
         std::to_string(pg.port()) +
         "\n"
         "    dbname: postgres\n"
         "    user: postgres\n"
         "    sslmode: verify-full\n"
         "    sslrootcert: \"" +
         root_cert.string() +
         "\"\n"
         "    pool_mode: transaction\n"
         "    application_name: " +
         application_name + "\n";
}

// One libpq connection to pgvigil, closed by the destructor.
class Client {
 public:
  explicit Client(std::uint16_t port) {
    const std::string conninfo = "host=127.0.0.1 port=" + std::to_string(port) +
                                 " dbname=app user=postgres sslmode=disable connect_timeout=10";
    conn_ = PQconnectdb(conninfo.c_str());
  }
  ~Client() { PQfinish(conn_); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool ok() const { return PQstatus(conn_) == CONNECTION_OK; }
  std::string error() const { return PQerrorMessage(conn_); }
  PGconn* get() const { return conn_; }

  // Runs sql; returns the result (caller PQclear()s) and fails the test when status differs.
  PGresult* exec(const std::string& sql, ExecStatusType expected) {
    PGresult* result = PQexec(conn_, sql.c_str());
    EXPECT_EQ(PQresultStatus(result), expected)
        << sql << ": " << PQresultErrorMessage(result) << PQerrorMessage(conn_);
    return result;
  }
  std::string value(const std::string& sql) {
    PGresult* result = exec(sql, PGRES_TUPLES_OK);
    std::string text = PQntuples(result) > 0 ? PQgetvalue(result, 0, 0) : "(no rows)";
    PQclear(result);
    return text;
  }

 private:
  PGconn* conn_ = nullptr;
};

class TlsLinkPgTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    certs_ = std::make_unique<TempDir>("pgvigil-tls-");
    make_certificate(certs_->path(), "server");
    make_certificate(certs_->path(), "wrong");  // same subject, another key: must not verify
    PgCluster::Options options;
    options.conf_lines = {"ssl = on"};
    options.hba_lines = {"hostssl all all 127.0.0.1/32 trust",
                         "hostnossl all all 127.0.0.1/32 reject"};
    options.data_files = {{"server.crt", read_file(certs_->path() / "server.crt")},
                          {"server.key", read_file(certs_->path() / "server.key")}};
    pg_ = PgCluster::start_new(options);
  }
  static void TearDownTestSuite() {
    pg_.reset();
    certs_.reset();
  }

  void SetUp() override { ASSERT_TRUE(pg_) << "PostgreSQL did not start"; }

  // Starts a daemon verifying the server against root_cert; waits until /readyz says 200.
  std::unique_ptr<DaemonProcess> start_daemon(const fs::path& root_cert,
                                              const std::string& application_name,
                                              bool expect_ready = true) {
    admin_port_ = free_tcp_port();
    listen_port_ = free_tcp_port();
    auto daemon = DaemonProcess::start(
        daemon_binary(),
        daemon_config(*pg_, admin_port_, listen_port_, root_cert, application_name));
    if (expect_ready) {
      const bool ready = wait_until(
          [&] {
            try {
              return test::http_get("127.0.0.1", admin_port_, "/readyz", seconds(2)).status ==
                     200;
            } catch (const std::exception&) {
              return false;
            }
          },
          seconds(15), milliseconds(50));
      EXPECT_TRUE(ready) << "not ready within 15 s; log:\n" << daemon->log_text();
    }
    return daemon;
  }

  static std::unique_ptr<TempDir> certs_;
  static std::unique_ptr<PgCluster> pg_;
  std::uint16_t admin_port_ = 0;
  std::uint16_t listen_port_ = 0;
};

std::unique_ptr<TempDir> TlsLinkPgTest::certs_;
std::unique_ptr<PgCluster> TlsLinkPgTest::pg_;

TEST_F(TlsLinkPgTest, ServerRefusesPlaintext) {
  // The premise of this suite: without TLS the server says no, so every success below is TLS.
  const std::string conninfo = pg_->conninfo() + " sslmode=disable";
  PGconn* conn = PQconnectdb(conninfo.c_str());
  EXPECT_NE(PQstatus(conn), CONNECTION_OK);
  EXPECT_NE(std::string(PQerrorMessage(conn)).find("no encryption"), std::string::npos)
      << PQerrorMessage(conn);
  PQfinish(conn);
}

TEST_F(TlsLinkPgTest, QueriesLargeResultsCopyAndPgbenchRelayOverTls) {
  auto daemon = start_daemon(certs_->path() / "server.crt", "pgvigil-tls");
  Client client(listen_port_);
  ASSERT_TRUE(client.ok()) << client.error() << "\nlog:\n" << daemon->log_text();

  EXPECT_EQ(client.value("SELECT 6 * 7"), "42");
  EXPECT_EQ(client.value("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"), "t");
  // Every connection pgvigil holds is TLS, seen from the server side.
  EXPECT_EQ(pg_->query_value("SELECT count(*) FILTER (WHERE NOT s.ssl) FROM pg_stat_ssl s "
                             "JOIN pg_stat_activity a USING (pid) "
                             "WHERE a.application_name = 'pgvigil-tls'"),
            "0");

  {  // ~20 MB result: many SSL records, partial reads, SSL_pending.
    PGresult* result = client.exec("SELECT repeat('x', 1000) FROM generate_series(1, 20000)",
                                   PGRES_TUPLES_OK);
    ASSERT_EQ(PQntuples(result), 20000);
    std::size_t total = 0;
    bool all_x = true;
    for (int row = 0; row < PQntuples(result); ++row) {
      total += static_cast<std::size_t>(PQgetlength(result, row, 0));
      const std::string_view value(PQgetvalue(result, row, 0), PQgetlength(result, row, 0));
      all_x = all_x && value.find_first_not_of('x') == std::string_view::npos;
    }
    PQclear(result);
    EXPECT_EQ(total, 20'000'000u);
    EXPECT_TRUE(all_x) << "a row arrived corrupted";
  }
  // The connection is still usable after the big result.
  EXPECT_EQ(client.value("SELECT 'after'"), "after");

  {  // COPY FROM STDIN, 4 MB in 64 KiB chunks: many SSL_write calls, WANT_WRITE under load.
    PQclear(client.exec("CREATE UNLOGGED TABLE tls_copy (line text)", PGRES_COMMAND_OK));
    PQclear(client.exec("COPY tls_copy FROM STDIN", PGRES_COPY_IN));
    std::string chunk;
    for (int i = 0; i < 64; ++i) chunk += std::string(1023, 'y') + "\n";  // 64 KiB
    for (int i = 0; i < 64; ++i) {
      ASSERT_EQ(PQputCopyData(client.get(), chunk.data(), static_cast<int>(chunk.size())), 1)
          << PQerrorMessage(client.get());
    }
    ASSERT_EQ(PQputCopyEnd(client.get(), nullptr), 1) << PQerrorMessage(client.get());
    PGresult* result = PQgetResult(client.get());
    EXPECT_EQ(PQresultStatus(result), PGRES_COMMAND_OK) << PQresultErrorMessage(result);
    EXPECT_STREQ(PQcmdTuples(result), "4096");
    PQclear(result);
    while ((result = PQgetResult(client.get())) != nullptr) PQclear(result);
    EXPECT_EQ(client.value("SELECT count(*) || ' ' || sum(length(line)) FROM tls_copy"),
              "4096 4190208");
    PQclear(client.exec("DROP TABLE tls_copy", PGRES_COMMAND_OK));
  }

  {  // pgbench -S through pgvigil in transaction mode.
    const auto pgbench = pgbench_path();
    ASSERT_TRUE(pgbench) << "pgbench not found";
    const fs::path log = daemon->dir() / "pgbench.log";
    // Initialized directly on the server (over TLS: sslmode prefer, hostssl trust).
    ASSERT_EQ(run_process({pgbench->string(), "-i", "-q", "-s", "1", "-h", "127.0.0.1", "-p",
                           std::to_string(pg_->port()), "-U", "postgres", "postgres"},
                          log, daemon->dir(), seconds(60)),
              0)
        << file_tail(log);
    // -T 2 ends by itself; 20 s without an end means a relay stalled.
    int code = -1;
    try {
      code = run_process({pgbench->string(), "-S", "-T", "2", "-c", "4", "-j", "2", "-n", "-h",
                          "127.0.0.1", "-p", std::to_string(listen_port_), "-U", "postgres",
                          "app"},
                         log, daemon->dir(), seconds(20));
    } catch (const std::exception& error) {
      ADD_FAILURE() << error.what();
    }
    const std::string output = read_file(log);
    ASSERT_EQ(code, 0) << output << "\ndaemon log:\n" << daemon->log_text();
    const std::string processed = "number of transactions actually processed: ";
    const std::size_t at = output.find(processed);
    ASSERT_NE(at, std::string::npos) << output;
    EXPECT_GT(std::atol(output.c_str() + at + processed.size()), 0) << output;
    std::cout << "pgbench -S over the TLS link: "
              << output.substr(at, output.find('\n', at) - at) << "\n";
    EXPECT_EQ(output.find("number of failed transactions: 0"), output.find("number of failed"))
        << output;
  }
  EXPECT_TRUE(daemon->running());
}

TEST_F(TlsLinkPgTest, WrongRootCertificateIsCountedAsTls) {
  auto daemon = start_daemon(certs_->path() / "wrong.crt", "pgvigil-wrong-ca", false);
  const bool counted = wait_until(
      [&] {
        const auto failures = sample_value(metrics_page(admin_port_),
                                           "pgvigil_connect_failures_total", {{"cause", "tls"}});
        return failures.value_or(0) > 0;
      },
      seconds(15), milliseconds(100));
  EXPECT_TRUE(counted) << metrics_page(admin_port_) << "\nlog:\n" << daemon->log_text();
  // Nothing else was blamed: the failure is a certificate, not the network.
  const std::string page = metrics_page(admin_port_);
  EXPECT_EQ(sample_value(page, "pgvigil_connect_failures_total", {{"cause", "network"}})
                .value_or(0),
            0)
      << page;
  EXPECT_EQ(sample_value(page, "pgvigil_connect_failures_total", {{"cause", "other"}}).value_or(0),
            0)
      << page;

  // A client gets an error, not a hang, and no server connection ever opened.
  Client client(listen_port_);
  EXPECT_FALSE(client.ok());
  EXPECT_TRUE(pg_->backend_pids("pgvigil-wrong-ca").empty());
}

}  // namespace
}  // namespace pgvigil::testing
