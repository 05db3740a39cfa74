#pragma once
// The fixture of the tests that run real PostgreSQL clients (psql, pgbench, libpq, drivers)
// through the real pgvigil binary to a real PostgreSQL: one PostgreSQL per test executable, one
// pgvigil per test with the databases it needs (its own application_name, so that a test only
// ever counts its own backends).

#include <gtest/gtest.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "tests/support/admin_metrics.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/pg_cluster.hpp"
#include "tests/support/temp_dir.hpp"

namespace pgvigil::testing {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

inline constexpr const char* kHost = "127.0.0.1";

// Ping settings for a test that runs pgbench through pgvigil: the fixture's fast detection
// (interval 1s, timeout 500ms) is for the tests of detection. With pgbench filling both cores of
// a 2-core machine, a backend idle between runs sometimes answers a ping, and the postmaster a new
// connection, only after more than 500 ms (the answer was not in pgvigil's socket at the timeout:
// unread 0), and pgvigil then rightly finds the server down and ends the sessions. The shipped
// interval, and a timeout no loaded test machine reaches.
inline constexpr const char* kPingUnderLoad = "{interval: 5s, timeout: 3s}";

// One entry under `databases:`; every entry points at the suite's PostgreSQL.
struct Database {
  std::string name;
  std::string pool_mode = "transaction";
  std::string dbname = "postgres";
  std::string auth_method;  // "": inherit auth.method
  std::string pool;         // flow map of pool overrides, e.g. "{max_size: 1}"; "": none
  std::string ping;         // flow map of ping overrides; "": the fixture's (interval 1s, 500ms)
  std::string tls_mode;     // "": inherit listen.tls.mode
  bool user_pools = false;  // queries as each client's role (no `user: postgres`)
  // The link to the server: "key: value" lines (sslmode, sslrootcert); none: sslmode disable.
  std::vector<std::string> server_tls;
};

struct ProxyOptions {
  std::vector<Database> databases;
  std::string auth_method = "trust";
  std::string users_file;    // contents of the users file; "": none
  std::string listen_extra;  // more keys of the listen map, e.g. "max_client_connections: 3"
  std::string auth_extra;    // more keys of the auth map, e.g. "hba_file: /path"
};

inline long elapsed_ms(Clock::time_point since) {
  return static_cast<long>(
      std::chrono::duration_cast<milliseconds>(Clock::now() - since).count());
}

inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

inline void write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

inline bool contains(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

struct Ran {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

class ProxyPgFixture : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    PgCluster::Options options;
    options.max_connections = 120;
    pg_ = PgCluster::start_new(options);
  }
  static void TearDownTestSuite() { pg_.reset(); }

  void SetUp() override {
    ASSERT_TRUE(pg_) << "PostgreSQL did not start";
    work_ = std::make_unique<TempDir>("pgvigil-clients-");
    app_name_ = std::string("pgv-") + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    if (app_name_.size() > 60) app_name_.resize(60);
  }

  void TearDown() override {
    // CLIENTS_PGTEST_LOG=1 shows the daemon's log of passing tests too.
    if (daemon_ && (HasFailure() || std::getenv("CLIENTS_PGTEST_LOG") != nullptr)) {
      std::cerr << "---- pgvigil log ----\n" << daemon_->log_text() << "---------------------\n";
    }
    daemon_.reset();
    work_.reset();
  }

  // Starts pgvigil with these databases and waits until it is ready and takes clients.
  void start_daemon(const ProxyOptions& options);

  std::filesystem::path socket_dir() const { return work_->path(); }

  std::string conninfo(const std::string& database, const std::string& user = "postgres",
                       const std::string& extra = "") const {
    return "host=127.0.0.1 port=" + std::to_string(port_) + " dbname=" + database + " user=" + user +
           " connect_timeout=5 sslmode=disable" + (extra.empty() ? "" : " " + extra);
  }

  // psql's fixed options: no psqlrc, unaligned, tuples only, stop at the first error.
  std::string psql(const std::string& database, const std::string& host = "127.0.0.1") const {
    return "psql -X -A -t -v ON_ERROR_STOP=1 -h " + host + " -p " + std::to_string(port_) +
           " -U postgres -d " + database;
  }

  // psql as `user` with `password` over TCP in the clear, running `sql`; output unaligned.
  Ran psql_as(const std::string& database, const std::string& user, const std::string& password,
              const std::string& sql);

  // Runs a shell command in the test's scratch directory.
  Ran run_shell(const std::string& command, milliseconds timeout = seconds(60));

  std::string metrics_page() const { return testing::metrics_page(admin_port_); }

  double metric(std::string_view name, const Labels& labels) const {
    return testing::metric(admin_port_, name, labels).value_or(0);
  }

  // The pids of this test's pgvigil backends.
  std::vector<pid_t> daemon_backends() const { return pg_->backend_pids(app_name_); }

  // pgbench tables in their own database, initialised once, directly on the server.
  void ensure_bench_database();

  std::string pgbench(const std::string& database, const std::string& args) const {
    return "pgbench -n " + args + " -h 127.0.0.1 -p " + std::to_string(port_) +
           " -U postgres " + database + " 2>&1";
  }

  // Runs pgbench through pgvigil and checks that it succeeded and that pgvigil counted at
  // least the transactions pgbench processed.
  void expect_pgbench_runs_and_is_counted(const std::string& database, const std::string& args);

  static std::unique_ptr<PgCluster> pg_;
  std::unique_ptr<TempDir> work_;
  std::unique_ptr<DaemonProcess> daemon_;
  std::string app_name_;
  std::uint16_t admin_port_ = 0;
  std::uint16_t port_ = 0;
  int commands_ = 0;
};

}  // namespace pgvigil::testing
