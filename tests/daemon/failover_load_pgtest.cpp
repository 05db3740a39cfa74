// An unplanned failover under load: the primary killed (`pg_ctl stop -m immediate`) and the
// standby promoted while clients write through pgvigil. Only the transactions in flight at the
// crash may fail, each with an error rather than a hang, and writes resume on the new primary
// without a reload.
//
// The load is bench/failover_load.py (libpq through psycopg2), not pgbench alone: pgbench ends a
// client at its first error, so it cannot tell a transaction that failed because it was in
// flight from one that failed because the pooler refused it afterwards. pgbench runs beside it,
// and must end on time.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <regex>
#include <sstream>

#include "tests/daemon/failover_fixture.hpp"
#include "tests/support/subprocess.hpp"
#include "tests/support/temp_dir.hpp"

namespace pgvigil::testing {
namespace {

const std::string kLoadTool = std::string(PGVIGIL_SOURCE_DIR) + "/bench/failover_load.py";

// Seconds since the epoch: the load tool stamps its transactions with the wall clock.
double wall_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// The report's numeric "key: value" lines.
std::map<std::string, double> numbers_of(const std::string& report) {
  std::map<std::string, double> numbers;
  static const std::regex line(R"(^(\w+): (-?[0-9.]+(?:e-?[0-9]+)?)$)");
  std::istringstream in(report);
  for (std::string text; std::getline(in, text);) {
    std::smatch match;
    if (std::regex_match(text, match, line)) numbers[match[1]] = std::stod(match[2]);
  }
  return numbers;
}

class FailoverLoadPgTest : public FailoverPgTest {
 protected:
  TempDir work_{"pgvigil-failover-load-"};
};

TEST_F(FailoverLoadPgTest, OnlyTransactionsInFlightAtTheCrashFailAndWritesResume) {
  const auto pgbench = pgbench_tables(work_.path());
  ASSERT_TRUE(pgbench);
  auto daemon = start(host_entry(*primary_) + ", " + host_entry(*standby_), "");

  // Eight clients writing 50 transactions a second each, and pgbench's TPC-B beside them.
  const auto load_log = work_.path() / "load.log";
  ChildGroup load(
      spawn_process({"/usr/bin/python3", kLoadTool, "run", "--port", std::to_string(ports_.listen),
                     "--dbname", "app", "--clients", "8", "--rate", "50", "--seconds", "12",
                     "--grace", "20", "--log", load_log.string()},
                    work_.path() / "load.out", work_.path()));
  const auto bench_log = work_.path() / "pgbench.log";
  ChildGroup bench(spawn_process({pgbench->string(), "-n", "-c", "2", "-T", "12", "-h", "127.0.0.1",
                                  "-p", std::to_string(ports_.listen), "-U", "postgres", "app"},
                                 bench_log, work_.path()));
  // The load is running: its writes reach the primary.
  ASSERT_TRUE(wait_until(
      [&] {
        return std::stoll(primary_->query_value(
                   "SELECT count(*) FROM pgbench_history WHERE tid = 1")) >= 200;
      },
      seconds(20)))
      << read_text(work_.path() / "load.out") << daemon->log_text();

  const double crash_start = wall_now();
  primary_->crash();  // as pg_ctl stop -m immediate, timed to the postmaster's exit
  const double crash_end = wall_now();
  standby_->promote();
  const double promoted = wall_now();

  std::optional<int> load_exit;
  ASSERT_TRUE(wait_until([&] { return (load_exit = load.try_reap()).has_value(); }, seconds(60)));
  ASSERT_EQ(*load_exit, 0) << read_text(work_.path() / "load.out");
  // pgbench ends at its -T (a client whose transaction failed ends earlier): none hangs.
  std::optional<int> bench_exit;
  EXPECT_TRUE(wait_until([&] { return (bench_exit = bench.try_reap()).has_value(); }, seconds(30)))
      << read_text(bench_log);

  const auto report_path = work_.path() / "report.txt";
  char crash_start_text[32], crash_end_text[32], promoted_text[32];
  std::snprintf(crash_start_text, sizeof crash_start_text, "%.6f", crash_start);
  std::snprintf(crash_end_text, sizeof crash_end_text, "%.6f", crash_end);
  std::snprintf(promoted_text, sizeof promoted_text, "%.6f", promoted);
  ASSERT_EQ(run_process({"/usr/bin/python3", kLoadTool, "report", "--log", load_log.string(),
                         "--crash-start", crash_start_text, "--crash-end", crash_end_text,
                         "--promoted", promoted_text},
                        report_path, work_.path(), seconds(30)),
            0)
      << read_text(report_path);
  const auto report = read_text(report_path);
  std::printf("%s\nthe postmaster took %.3f s to exit, the promotion %.3f s\n", report.c_str(),
              crash_end - crash_start, promoted - crash_end);
  auto numbers = numbers_of(report);
  for (const char* key : {"committed", "hung", "failed", "failed_while_crashing",
                          "failed_after_crash", "longest_failed_seconds",
                          "committed_after_promotion", "first_write_after_promotion_seconds"}) {
    ASSERT_TRUE(numbers.contains(key)) << key << " missing from\n" << report;
  }

  EXPECT_GT(numbers["committed"], 400) << report;
  EXPECT_EQ(numbers["hung"], 0) << report;
  // A transaction that began after the crash waited for the new primary instead of failing.
  EXPECT_EQ(numbers["failed_after_crash"], 0) << report << daemon->log_text();
  // Each failure an error the client got promptly, not a wait for some timeout.
  EXPECT_LT(numbers["longest_failed_seconds"], 2.0) << report;
  EXPECT_GT(numbers["committed_after_promotion"], 100) << report;
  // The issue's bound is 1 s on an idle machine; ctest allows for a loaded one, and
  // bench/failover measures it.
  EXPECT_LT(numbers["first_write_after_promotion_seconds"], 5.0) << report;
  EXPECT_EQ(metric(ports_.admin, "pgvigil_failovers_total", {{"pool", "app"}}), 1);
}

}  // namespace
}  // namespace pgvigil::testing
