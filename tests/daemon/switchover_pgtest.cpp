// Planned switchovers: pause, switch the primary, resume, while pgbench runs through pgvigil.
// The pause lets transactions in flight finish and holds new ones, so no client sees the old
// primary go; the resume connects to whichever server is the primary by then.

#include <gtest/gtest.h>

#include <cstdio>

#include "tests/daemon/failover_fixture.hpp"
#include "tests/metrics/http_client.hpp"
#include "tests/support/subprocess.hpp"
#include "tests/support/temp_dir.hpp"

namespace pgvigil::testing {
namespace {

class SwitchoverPgTest : public FailoverPgTest {
 protected:
  // `pgvigil pause|resume app [extra]` against the daemon's own config: its exit code; its
  // output lands in last_output_.
  int control(const DaemonProcess& daemon, const std::string& action,
              const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv{PGVIGIL_BINARY, "-c", daemon.config_path().string(), action,
                                  "app"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    const auto output = work_.path() / ("control-" + std::to_string(++commands_) + ".log");
    const int code = run_process(argv, output, work_.path(), seconds(60));
    last_output_ = read_text(output);
    return code;
  }

  double open_connections() {
    double open = 0;
    for (const char* state : {"connecting", "idle", "probing", "checked_out"}) {
      open += metric(ports_.admin, "pgvigil_server_connections", {{"pool", "app"}, {"state", state}})
                  .value_or(0);
    }
    return open;
  }

  TempDir work_{"pgvigil-switchover-"};
  std::string last_output_;
  int commands_ = 0;
};

TEST_F(SwitchoverPgTest, PauseSwitchResumeLosesNoTransaction) {
  const auto pgbench = pgbench_tables(work_.path());
  ASSERT_TRUE(pgbench);
  auto daemon = start(host_entry(*primary_) + ", " + host_entry(*standby_), "", "10s",
                      "pause_timeout: 60s, ");

  // pgbench's default transaction (three updates and an insert between BEGIN and END) through
  // pgvigil for the whole switchover; a client whose statement fails is aborted and counted.
  const auto bench_log = work_.path() / "pgbench.log";
  const pid_t bench = spawn_process(
      {pgbench->string(), "-n", "-c", "4", "-j", "2", "-T", "14", "-h", "127.0.0.1", "-p",
       std::to_string(ports_.listen), "-U", "postgres", "app"},
      bench_log, work_.path());
  // Transactions are running: the pause has something to wait for.
  ASSERT_TRUE(wait_until(
      [&] {
        return metric(ports_.admin, "pgvigil_server_connections",
                      {{"pool", "app"}, {"state", "checked_out"}})
                   .value_or(0) > 0;
      },
      seconds(10)))
      << daemon->log_text();
  const auto history_before = primary_->query_value("SELECT count(*) FROM pgbench_history");

  // The command waits until the transactions in flight are done and every connection closed.
  ASSERT_EQ(control(*daemon, "pause"), 0) << last_output_ << daemon->log_text();
  EXPECT_NE(last_output_.find("0 server connections still open"), std::string::npos)
      << last_output_;
  EXPECT_EQ(open_connections(), 0);
  // The backends exit once their sockets are closed.
  EXPECT_TRUE(wait_until([&] { return primary_->backend_pids("pgvigil-failover").empty(); },
                         seconds(10)));
  // Paused on purpose: still ready, and it says why it has no connection.
  const auto ready = test::http_get("127.0.0.1", ports_.admin, "/readyz");
  EXPECT_EQ(ready.status, 200) << ready.body;
  // Each shard of the database says so.
  EXPECT_NE(ready.body.find("pool app"), std::string::npos) << ready.body;
  EXPECT_NE(ready.body.find(": paused, 0 healthy"), std::string::npos) << ready.body;

  primary_->stop("fast");
  standby_->promote();
  // The failover clock starts inside the resume, before the command returns.
  const auto resume_asked = Clock::now();
  ASSERT_EQ(control(*daemon, "resume"), 0) << last_output_;
  // The resume has taken effect when the command returns.
  const auto resumed_at = Clock::now();
  // A write through pgvigil, as an application's next transaction.
  auto conn = client();
  const auto written =
      value_through(conn.get(), "INSERT INTO writes (note) VALUES ('after resume') RETURNING 'ok'");
  const auto took = std::chrono::duration<double>(Clock::now() - resumed_at).count();
  EXPECT_EQ(written, "ok") << daemon->log_text();
  std::printf("first write served %.3f s after the resume was asked\n", took);
  EXPECT_LT(took, 1.0);
  EXPECT_EQ(value_through(conn.get(), "SELECT inet_server_port()"),
            std::to_string(standby_->port()));

  std::optional<int> bench_exit;
  ASSERT_TRUE(wait_until([&] { return (bench_exit = try_reap(bench)).has_value(); }, seconds(60)));
  const auto report = read_text(bench_log);
  std::printf("%s\n", report.c_str());
  EXPECT_EQ(*bench_exit, 0) << report << daemon->log_text();
  EXPECT_NE(report.find("number of failed transactions: 0 "), std::string::npos) << report;
  EXPECT_EQ(report.find("aborted"), std::string::npos) << report;
  // pgbench went on writing on the new primary after the resume.
  EXPECT_GT(std::stoll(standby_->query_value("SELECT count(*) FROM pgbench_history")),
            std::stoll(history_before));
  EXPECT_GE(evictions(ports_, "paused"), 2);  // min_idle's connections at least
  EXPECT_EQ(metric(ports_.admin, "pgvigil_failovers_total", {{"pool", "app"}}), 1);
  // From the resumed pool's refused attempt on the stopped primary to its first lending: within
  // the time from asking the resume to the first write (the command's return can come later
  // than the clock's start, so `took` alone may be shorter when all of it takes milliseconds).
  EXPECT_EQ(metric(ports_.admin, "pgvigil_failover_seconds_count", {{"pool", "app"}}), 1);
  EXPECT_LT(metric(ports_.admin, "pgvigil_failover_seconds_sum", {{"pool", "app"}}).value_or(99),
            std::chrono::duration<double>(Clock::now() - resume_asked).count());
}

TEST_F(SwitchoverPgTest, APauseWaitsForTheTransactionInFlightAndIsBounded) {
  auto daemon = start(host_entry(*primary_) + ", " + host_entry(*standby_), "", "10s",
                      "pause_timeout: 1s, ");
  auto holder = client();
  ASSERT_EQ(value_through(holder.get(), "BEGIN"), "");
  ASSERT_EQ(value_through(holder.get(), "INSERT INTO writes (note) VALUES ('in flight') "
                                        "RETURNING 'ok'"),
            "ok");
  // The open transaction keeps its connection: the command gives up after its wait (exit 2).
  EXPECT_EQ(control(*daemon, "pause", {"--wait", "0.5"}), 2) << last_output_;
  EXPECT_NE(last_output_.find("1 of them lent to clients"), std::string::npos) << last_output_;
  // A client that asks meanwhile waits pool.pause_timeout, then gets 53300 and keeps its
  // session.
  auto waiting = client();
  const auto refused_at = Clock::now();
  PGresult* result = PQexec(waiting.get(), "SELECT 1");
  EXPECT_EQ(PQresultStatus(result), PGRES_FATAL_ERROR);
  const char* sqlstate = PQresultErrorField(result, PG_DIAG_SQLSTATE);
  EXPECT_STREQ(sqlstate ? sqlstate : "", "53300") << PQerrorMessage(waiting.get());
  EXPECT_NE(std::string(PQerrorMessage(waiting.get())).find("paused"), std::string::npos);
  PQclear(result);
  const auto waited = std::chrono::duration<double>(Clock::now() - refused_at).count();
  // pool.pause_timeout, not the longer checkout_timeout (10 s).
  EXPECT_GE(waited, 0.9);
  EXPECT_LT(waited, 5.0);
  EXPECT_EQ(PQstatus(waiting.get()), CONNECTION_OK);

  // The transaction in flight finishes normally; its connection closes as it comes back.
  EXPECT_EQ(value_through(holder.get(), "COMMIT"), "");
  EXPECT_EQ(control(*daemon, "pause"), 0) << last_output_;
  EXPECT_EQ(primary_->query_value("SELECT count(*) FROM writes WHERE note = 'in flight'"), "1");
  EXPECT_TRUE(wait_until([&] { return primary_->backend_pids("pgvigil-failover").empty(); },
                         seconds(10)));

  ASSERT_EQ(control(*daemon, "resume"), 0) << last_output_;
  EXPECT_EQ(value_through(waiting.get(), "SELECT 1"), "1");
  EXPECT_EQ(value_through(holder.get(), "SELECT inet_server_port()"),
            std::to_string(primary_->port()));
  EXPECT_EQ(metric(ports_.admin, "pgvigil_failovers_total", {{"pool", "app"}}), 0);
}

}  // namespace
}  // namespace pgvigil::testing
