// The server's health as a client sees it (issue 14): a query in flight on a server that went
// silent or froze ends with 08006 within ping.interval + ping.timeout + 1 s, because pgvigil
// asks the server on another path instead of waiting for the kernel; a query on a server that
// still answers elsewhere (a long one, or one frozen backend) is left alone; and clients that
// arrive while the server is found down wait for it, or with pool.fail_fast get 08006 at once.
// The keep-alive and ping values are the shipped config.yaml's.

#include <signal.h>

#include <cstdio>
#include <functional>
#include <string>
#include <thread>

#include "tests/faults/fault_fixture.hpp"
#include "tests/faults/proxy_client.hpp"
#include "tests/support/wait_until.hpp"

namespace pgvigil::testing {
namespace {

using namespace std::chrono_literals;

constexpr auto kClientDeadline = 40s;

// config.yaml's keepalive and ping sections.
DaemonSettings with_shipped_probes(DaemonSettings settings) {
  settings.keepalive_idle = 5s;
  settings.keepalive_interval = 2s;
  settings.keepalive_count = 3;
  settings.user_timeout = 11s;
  settings.ping_interval = 5s;
  settings.ping_timeout = 1s;
  return settings;
}

// What the issue allows from the fault to the client's 08006.
double verdict_bound(const DaemonSettings& settings) {
  return seconds(settings.ping_interval) + seconds(settings.ping_timeout) + 1.0;
}

std::string describe(const ClientOutcome& outcome) {
  if (!outcome.finished) return "no answer (hang) after " + std::to_string(outcome.seconds) + " s";
  if (outcome.ok) return "ok after " + std::to_string(outcome.seconds) + " s";
  return "error " + outcome.sqlstate + " after " + std::to_string(outcome.seconds) +
         " s: " + outcome.message;
}

class ServerHealthTest : public FaultTest {
 protected:
  ProxyClient connect_client() {
    return ProxyClient(daemon().client_port(), DaemonUnderTest::database(), "postgres",
                       kClientDeadline);
  }
  // Starts pgvigil, waits until its pool is warm, and logs a client in (check connect().ok).
  ProxyClient warm_client(const DaemonSettings& config) {
    start_daemon(config);
    EXPECT_TRUE(wait_warm());
    return connect_client();
  }
  double health() const { return daemon_->metric("pgvigil_server_health"); }
  double verdicts(const std::string& verdict) const {
    return daemon_->metric("pgvigil_server_verdicts_total", {{"verdict", verdict}});
  }
  // Waits until `sql` runs on the server (state active), and returns its backend.
  pid_t running_backend(const std::string& sql) {
    std::string pid;
    const std::string find = "SELECT pid FROM pg_stat_activity WHERE state = 'active' AND query = '" +
                             sql + "'";
    wait_until([&] {
      pid = cluster().query_value("SELECT coalesce((" + find + " LIMIT 1)::text, '')");
      return !pid.empty();
    }, 10s);
    return pid.empty() ? 0 : static_cast<pid_t>(std::stoi(pid));
  }

  // Black-holes the path and waits for the verdict, which the idle connections' pings reach.
  ::testing::AssertionResult black_hole_until_down() {
    server().black_hole();
    if (wait_until([&] { return health() == 2; }, 15s)) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "no down verdict within 15 s\n" << daemon().summary();
  }

  // A query in flight when `fault` strikes must end with 08006, server_down, within the bound.
  void expect_server_down_ends(const char* what, const std::function<void()>& fault) {
    const auto config = with_shipped_probes(settings());
    auto client = warm_client(config);
    ASSERT_TRUE(client.connect().ok) << describe(client.connect());
    const std::string sql = "SELECT pg_sleep(3)";
    ASSERT_TRUE(client.send(sql));
    ASSERT_NE(running_backend(sql), 0) << "the query never ran";
    // The pool has refilled what the query took, so the first sign comes from the query's
    // silence or an idle connection's ping, not from a refill caught by the fault.
    ASSERT_TRUE(wait_warm());
    const auto faulted_at = Clock::now();
    fault();
    const auto outcome = client.finish(kClientDeadline);
    const double waited = std::chrono::duration<double>(Clock::now() - faulted_at).count();
    std::printf("%s during a query (ping %.0fs/%.0fs, user_timeout %.0fs): %s, %.3f s after "
                "the fault (bound %.1f s)\n",
                what, seconds(config.ping_interval), seconds(config.ping_timeout),
                seconds(std::chrono::duration_cast<std::chrono::milliseconds>(config.user_timeout)),
                describe(outcome).c_str(), waited, verdict_bound(config));
    ASSERT_TRUE(outcome.finished) << describe(outcome);
    EXPECT_FALSE(outcome.ok) << describe(outcome);
    EXPECT_EQ(outcome.sqlstate, "08006") << describe(outcome);
    EXPECT_NE(outcome.message.find("server_down"), std::string::npos) << describe(outcome);
    EXPECT_LE(waited, verdict_bound(config));
    EXPECT_TRUE(wait_until([&] { return daemon().evictions("server_down") >= 1; }, 3s))
        << daemon().summary();
    EXPECT_EQ(health(), 2);
    EXPECT_EQ(verdicts("down"), 1);
    EXPECT_EQ(daemon().metric("pgvigil_server_down_verdict_seconds_count"), 1);
    // The log says it once, not once per connection.
    const auto log = daemon().log();
    std::size_t verdict_lines = 0;
    for (auto at = log.find("is down,"); at != std::string::npos; at = log.find("is down,", at + 1)) {
      ++verdict_lines;
    }
    EXPECT_EQ(verdict_lines, 1u) << log;
  }
};

TEST_F(ServerHealthTest, BlackHoleDuringAQueryEndsItWithinPingIntervalPlusTimeout) {
  expect_server_down_ends("black hole", [&] { server().black_hole(); });
  server().heal();
  // Healthy again once a connection is made.
  EXPECT_TRUE(wait_until([&] { return health() == 0; }, 15s)) << daemon().summary();
  EXPECT_EQ(verdicts("healthy"), 1);
}

TEST_F(ServerHealthTest, FrozenServerDuringAQueryEndsItWithinPingIntervalPlusTimeout) {
  expect_server_down_ends("every server process frozen", [&] {
    for (const pid_t pid : cluster().child_pids()) ::kill(pid, SIGSTOP);
  });
  server().thaw();
  EXPECT_TRUE(wait_until([&] { return health() == 0; }, 15s)) << daemon().summary();
}

TEST_F(ServerHealthTest, OneFrozenBackendOnALiveServerIsLeftAloneUntilItThaws) {
  const auto config = with_shipped_probes(settings());
  auto client = warm_client(config);
  ASSERT_TRUE(client.connect().ok) << describe(client.connect());
  const std::string sql = "SELECT pg_sleep(1)";
  ASSERT_TRUE(client.send(sql));
  const pid_t backend = running_backend(sql);
  ASSERT_NE(backend, 0);
  ::kill(backend, SIGSTOP);
  const auto frozen_at = Clock::now();
  // Frozen past two rounds of suspicion: each time another path answers.
  const auto frozen_for = config.ping_interval * 2 + config.ping_timeout;
  EXPECT_TRUE(wait_until([&] { return verdicts("suspect") >= 1; }, frozen_for))
      << "the silent request never made the server suspect\n" << daemon().summary();
  std::this_thread::sleep_until(frozen_at + frozen_for);  // the length of the freeze is the scenario
  ::kill(backend, SIGCONT);
  const auto outcome = client.finish(kClientDeadline);
  std::printf("one backend frozen %.0f s under its query: %s; suspect %.0f times, down %.0f\n",
              seconds(frozen_for), describe(outcome).c_str(), verdicts("suspect"),
              verdicts("down"));
  EXPECT_TRUE(outcome.ok) << describe(outcome);
  EXPECT_EQ(verdicts("down"), 0);
  EXPECT_EQ(daemon().evictions("server_down"), 0) << daemon().summary();
  EXPECT_EQ(health(), 0);
}

TEST_F(ServerHealthTest, ALongQueryOnAHealthyServerCompletes) {
  const auto config = with_shipped_probes(settings());
  auto client = warm_client(config);
  ASSERT_TRUE(client.connect().ok) << describe(client.connect());
  const auto outcome = client.query("SELECT pg_sleep(20)", kClientDeadline);
  std::printf("pg_sleep(20) on a healthy server: %s; suspect %.0f times\n",
              describe(outcome).c_str(), verdicts("suspect"));
  EXPECT_TRUE(outcome.ok) << describe(outcome);
  EXPECT_GE(verdicts("suspect"), 1) << "the silence was never checked";
  EXPECT_EQ(verdicts("down"), 0);
  EXPECT_EQ(health(), 0);
}

TEST_F(ServerHealthTest, FailFastRefusesClientsAtOnceWhileTheServerIsDown) {
  auto config = settings();
  config.fail_fast = true;
  config.checkout_timeout = 5000ms;
  auto client = warm_client(config);  // logged in before the fault; its first query comes after
  ASSERT_TRUE(client.connect().ok) << describe(client.connect());
  ASSERT_TRUE(black_hole_until_down());
  const auto outcome = client.query("SELECT 1", kClientDeadline);
  std::printf("fail_fast, a query after the verdict: %s\n", describe(outcome).c_str());
  EXPECT_FALSE(outcome.ok);
  EXPECT_EQ(outcome.sqlstate, "08006") << describe(outcome);
  EXPECT_NE(outcome.message.find("is down"), std::string::npos) << describe(outcome);
  EXPECT_LT(outcome.seconds, 0.1);
  // A refusal, not a FATAL: once the path heals and the server answers again, the same
  // session is served.
  server().heal();
  EXPECT_TRUE(wait_until([&] { return health() == 0; }, 15s)) << daemon().summary();
  const auto after = client.query("SELECT 1", kClientDeadline);
  EXPECT_TRUE(after.ok) << describe(after);
}

TEST_F(ServerHealthTest, ByDefaultClientsWaitForTheServerToComeBack) {
  auto config = settings();
  config.checkout_timeout = 8000ms;
  auto client = warm_client(config);
  ASSERT_TRUE(client.connect().ok) << describe(client.connect());
  ASSERT_TRUE(black_hole_until_down());
  ASSERT_TRUE(client.send("SELECT 1"));
  std::this_thread::sleep_for(1s);  // the client waits through part of the outage: the scenario
  server().heal();
  const auto outcome = client.finish(kClientDeadline);
  std::printf("default, a query 1 s before the path heals: %s\n", describe(outcome).c_str());
  EXPECT_TRUE(outcome.ok) << describe(outcome);
  EXPECT_LT(outcome.seconds, seconds(config.checkout_timeout));
}

}  // namespace
}  // namespace pgvigil::testing
