// The server is there but will not have us (all slots taken, wrong password, database gone) or
// the name does not resolve: pgvigil must count each failure under its cause, back off instead
// of hammering, say so once in a clear log line, stay cheap while it waits, and not crash.

#include <libpq-fe.h>

#include <cstdio>
#include <fstream>
#include <thread>

#include "tests/faults/fault_fixture.hpp"
#include "tests/support/prometheus_text.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/wait_until.hpp"

namespace pgvigil::testing {
namespace {

using namespace std::chrono_literals;

// The connect failures of one cause and of all causes, from one page: read from two pages, a
// failure counted between the reads would seem to be of another cause.
struct Failures {
  double of_cause = 0;
  double all = 0;
};

Failures failures_now(DaemonUnderTest& daemon, const std::string& cause) {
  const auto page = daemon.metrics_page();
  const Labels pool{{"pool", DaemonUnderTest::database()}};
  Labels of_cause = pool;
  of_cause["cause"] = cause;
  return {sample_value(page, "pgvigil_connect_failures_total", of_cause).value_or(0),
          sample_value(page, "pgvigil_connect_failures_total", pool).value_or(0)};
}

// Connect failures and CPU use over a fixed window while the server keeps refusing. With
// reconnect 100 ms doubling to 1 s (jitter only shortens a wait, by up to half), 5 s hold at
// most a dozen attempts; a busy loop would show hundreds.
void expect_backoff(DaemonUnderTest& daemon, const std::string& cause) {
  constexpr auto kWindow = 5s;
  const auto before = failures_now(daemon, cause);
  const auto cpu_before = daemon.cpu_time();
  const auto window_start = Clock::now();
  std::this_thread::sleep_for(kWindow);  // the window being measured, not a wait for a condition
  const double elapsed = std::chrono::duration<double>(Clock::now() - window_start).count();
  const double cpu = (daemon.cpu_time() - cpu_before).count();
  const auto after = failures_now(daemon, cause);
  const double attempts = after.of_cause - before.of_cause;
  const double all_attempts = after.all - before.all;
  std::printf("cause=%s: %.0f failed connects in %.1f s (%.0f of any cause), CPU %.3f s (%.1f%% "
              "of a core)\n",
              cause.c_str(), attempts, elapsed, all_attempts, cpu, 100 * cpu / elapsed);
  EXPECT_GE(attempts, 2) << "pgvigil stopped retrying";
  EXPECT_LE(all_attempts, 12) << "no back-off";
  EXPECT_EQ(attempts, all_attempts) << "failures counted under another cause:\n"
                                    << daemon.summary();
  EXPECT_LT(cpu / elapsed, 0.10);
  EXPECT_TRUE(daemon.running()) << "pgvigil exited";
}

// Waits for the first failure of cause, then checks what an operator sees meanwhile.
void expect_refused(DaemonUnderTest& daemon, const std::string& cause) {
  ASSERT_TRUE(wait_until([&] { return daemon.connect_failures(cause) >= 1; }, 10s))
      << "no connect failure counted under cause=" << cause << ":\n"
      << daemon.summary();
  EXPECT_EQ(daemon.readyz_status(), 503);
  EXPECT_EQ(daemon.idle(), 0);
  EXPECT_TRUE(daemon.process().wait_for_log("cause=" + cause, 5s))
      << "no log line naming cause=" << cause;
  expect_backoff(daemon, cause);
}

struct ConnDeleter {
  void operator()(PGconn* conn) const { PQfinish(conn); }
};
using Conn = std::unique_ptr<PGconn, ConnDeleter>;

TEST_F(FaultTest, AllConnectionSlotsTakenIsCountedAsTooManyConnectionsWithBackoff) {
  // Whatever earlier tests left must be gone first, or a slot freed later would let pgvigil in.
  ASSERT_TRUE(wait_until(
      [&] {
        return cluster().query_value("SELECT count(*) FROM pg_stat_activity WHERE backend_type = "
                                     "'client backend' AND pid <> pg_backend_pid()") == "0";
      },
      15s))
      << "other client backends did not go away";
  // Take every slot (superuser slots included: pgvigil logs in as a superuser here).
  const std::string conninfo = "host=" + server().address() + " port=" +
                               std::to_string(server().port()) +
                               " dbname=postgres user=postgres connect_timeout=5 "
                               "application_name=pgvigil_faults_slot_holder";
  std::vector<Conn> holders;
  std::string refusal;
  for (int i = 0; i <= kMaxConnections; ++i) {
    Conn conn(PQconnectdb(conninfo.c_str()));
    if (PQstatus(conn.get()) != CONNECTION_OK) {
      refusal = PQerrorMessage(conn.get());
      break;
    }
    holders.push_back(std::move(conn));
  }
  ASSERT_NE(refusal.find("too many clients"), std::string::npos)
      << "could not fill the slots (" << holders.size() << " taken): " << refusal;
  std::printf("holding %zu connection slots\n", holders.size());

  auto& daemon = start_daemon(settings());
  expect_refused(daemon, "too_many_connections");

  const auto released_at = Clock::now();
  holders.clear();
  const auto refilled = seconds_until(
      [&] { return daemon.readyz_status() == 200 && daemon.idle() == 2; }, released_at, 10s);
  ASSERT_TRUE(refilled) << "the pool did not fill once slots were free:\n" << daemon.summary();
  std::printf("slots released: pool filled after %.3f s\n", *refilled);
}

TEST_F(FaultTest, WrongPasswordIsCountedAsAuthenticationWithBackoff) {
  if (cluster().query_value(std::string("SELECT count(*) FROM pg_roles WHERE rolname = '") +
                            kScramUser + "'") == "0") {
    cluster().execute(std::string("CREATE ROLE ") + kScramUser +
                      " LOGIN PASSWORD 'the-right-password'");
  }
  TempDir secrets("pgvigil-faults-");
  const auto password_file = secrets.path() / "password";
  std::ofstream(password_file) << "a-wrong-password\n";
  auto config = settings();
  config.user = kScramUser;
  config.password_file = password_file.string();
  auto& daemon = start_daemon(config);
  expect_refused(daemon, "authentication");
  EXPECT_EQ(daemon.log().find("a-wrong-password"), std::string::npos)
      << "the password appears in the log";
}

TEST_F(FaultTest, DroppedDatabaseEvictsThePoolAndIsCountedAsDatabaseMissingWithBackoff) {
  const std::string dbname = "faultdb";
  // A failed earlier run may have left it (no IF EXISTS: its NOTICE would clutter the output).
  if (cluster().query_value("SELECT count(*) FROM pg_database WHERE datname = '" + dbname +
                            "'") != "0") {
    cluster().execute("DROP DATABASE " + dbname + " WITH (FORCE)");
  }
  cluster().execute("CREATE DATABASE " + dbname);
  auto config = settings();
  config.dbname = dbname;
  auto& daemon = start_daemon(config);
  ASSERT_TRUE(wait_warm());

  const auto dropped_at = Clock::now();
  cluster().execute("DROP DATABASE " + dbname + " WITH (FORCE)");
  const auto evicted = seconds_until(
      [&] { return daemon.evictions("server_error") + daemon.evictions("server_closed") >= 2; },
      dropped_at, 5s);
  ASSERT_TRUE(evicted) << daemon.summary();
  EXPECT_GE(daemon.detection_count("server_error") + daemon.detection_count("server_closed"), 2);
  std::printf("database dropped: both connections evicted %.3f s after DROP DATABASE returned\n",
              *evicted);
  expect_refused(daemon, "database_missing");

  const auto recreated_at = Clock::now();
  cluster().execute("CREATE DATABASE " + dbname);
  const auto refilled = seconds_until(
      [&] { return daemon.readyz_status() == 200 && daemon.idle() == 2; }, recreated_at, 10s);
  ASSERT_TRUE(refilled) << daemon.summary();
  std::printf("database recreated: pool filled after %.3f s\n", *refilled);
  daemon_.reset();  // its connections would block the DROP
  cluster().execute("DROP DATABASE " + dbname + " WITH (FORCE)");
}

TEST_F(FaultTest, UnresolvableHostStartsNotReadyAndIsCountedAsNameResolutionWithBackoff) {
  auto config = settings();
  config.host = "nonexistent.invalid";
  auto& daemon = start_daemon(config);
  EXPECT_TRUE(daemon.running());
  expect_refused(daemon, "name_resolution");
}

}  // namespace
}  // namespace pgvigil::testing
