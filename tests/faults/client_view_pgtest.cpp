// The faults as a client of pgvigil's proxy sees them: a query caught by a silent path must end
// with an ErrorResponse 08006 within the kernel's bound (not the ~15 min of default
// retransmission), evicted under the right reason; and a client asking for a connection while
// the server is unreachable or frozen gets a healthy connection or, after checkout_timeout, an
// error that says why: never a hang.

#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <future>
#include <thread>

#include "tests/faults/detection_bounds.hpp"
#include "tests/faults/fault_fixture.hpp"
#include "tests/faults/proxy_client.hpp"
#include "tests/faults/system_command.hpp"
#include "tests/support/wait_until.hpp"

namespace pgvigil::testing {
namespace {

using namespace std::chrono_literals;

// Longer than any bound asserted here: a client still waiting then is reported as a hang.
constexpr auto kClientDeadline = 40s;

std::string describe(const ClientOutcome& outcome) {
  if (!outcome.finished) return "no answer (hang) after " + std::to_string(outcome.seconds) + " s";
  if (outcome.ok) return "ok after " + std::to_string(outcome.seconds) + " s";
  return "error " + (outcome.sqlstate.empty() ? std::string("(no SQLSTATE)") : outcome.sqlstate) +
         " after " + std::to_string(outcome.seconds) + " s: " + outcome.message;
}

// Whether any socket of ours towards the server holds data the server has not acknowledged.
bool unacknowledged_data_to(NetnsServer& server) {
  const auto sockets = run_checked(
      {"ss", "-tniH", "dst", server.address() + ":" + std::to_string(server.port())});
  return sockets.find("unacked:") != std::string::npos;
}

ProxyClient connect_client(DaemonUnderTest& daemon, const DaemonSettings& config) {
  return ProxyClient(daemon.client_port(), DaemonUnderTest::database(), config.user,
                     kClientDeadline);
}

TEST_F(FaultTest, QueryIntoASilentPathEndsWith08006AfterUserTimeout) {
  auto config = settings();
  config.pool_mode = "session";
  // Keep-alive far off: with the query's bytes unacknowledged only TCP_USER_TIMEOUT can end
  // it, and no probe may find the silent path first. Pings never touch a checked-out connection.
  config.keepalive_idle = 60s;
  config.user_timeout = 4000ms;
  // Nor may the server's health (server_health_pgtest.cpp): no idle ping, and no suspicion of
  // the silent request, within the kernel's bound.
  config.ping_interval = 30s;
  auto& daemon = start_daemon(config);
  ASSERT_TRUE(wait_warm());
  auto client = connect_client(daemon, config);
  ASSERT_TRUE(client.connect().ok) << describe(client.connect());
  const auto first = client.query("SELECT 1", 10s);
  ASSERT_TRUE(first.ok) << describe(first);
  // No refill under way either: a connection attempt the fault times out is a sign of trouble.
  ASSERT_TRUE(wait_warm());
  const double bound = seconds(config.user_timeout) + kSlack;

  server().black_hole();
  const auto outcome = client.query("SELECT 1", kClientDeadline);
  std::printf("silent path, then a query (session mode, user_timeout %lld ms): %s\n",
              static_cast<long long>(config.user_timeout.count()), describe(outcome).c_str());
  ASSERT_TRUE(outcome.finished) << describe(outcome);
  EXPECT_FALSE(outcome.ok);
  EXPECT_EQ(outcome.sqlstate, "08006") << describe(outcome);
  EXPECT_NE(outcome.message.find("user_timeout"), std::string::npos) << describe(outcome);
  EXPECT_LE(outcome.seconds, bound);
  EXPECT_TRUE(wait_until([&] { return daemon.evictions("user_timeout") >= 1; }, 3s))
      << daemon.summary();
  EXPECT_EQ(daemon.evictions("user_timeout"), 1) << daemon.summary();
  EXPECT_EQ(daemon.evictions("keepalive_timeout"), 0) << daemon.summary();
  EXPECT_TRUE(daemon.running());
}

TEST_F(FaultTest, RunningQueryOnASilentPathEndsWith08006AfterKeepalive) {
  auto config = settings();
  config.pool_mode = "session";
  // The kernel's bound alone: the server's health (server_health_pgtest.cpp) would end the
  // query sooner, after ping.interval + ping.timeout.
  config.ping_interval = 30s;
  auto& daemon = start_daemon(config);
  ASSERT_TRUE(wait_warm());
  auto client = connect_client(daemon, config);
  ASSERT_TRUE(client.connect().ok) << describe(client.connect());
  ASSERT_TRUE(client.send("SELECT pg_sleep(30)"));
  // Running on the server means the query's bytes were acknowledged: from here the connection
  // carries no unacknowledged data, so keep-alive is what must find the silent path.
  ASSERT_TRUE(wait_until(
      [&] {
        return cluster().query_value("SELECT count(*) FROM pg_stat_activity WHERE query = "
                                     "'SELECT pg_sleep(30)' AND state = 'active'") == "1";
      },
      10s));
  // The server ACKs the query late (delayed ACK, up to 200 ms): a black hole before that ACK
  // leaves the query unacknowledged, which is the other test's case.
  ASSERT_TRUE(wait_until([&] { return !unacknowledged_data_to(server()); }, 5s));
  // No refill under way either: a connection attempt the fault times out is a sign of trouble.
  ASSERT_TRUE(wait_warm());
  const double kernel = kernel_keepalive_death(config).count();
  const double bound = kernel + kSlack;

  server().black_hole();
  const auto outcome = client.finish(kClientDeadline);
  std::printf("silent path under a running query (keep-alive %llds/%llds/%d, user_timeout %lld "
              "ms, kernel bound %.1f s): %s\n",
              static_cast<long long>(config.keepalive_idle.count()),
              static_cast<long long>(config.keepalive_interval.count()), config.keepalive_count,
              static_cast<long long>(config.user_timeout.count()), kernel,
              describe(outcome).c_str());
  ASSERT_TRUE(outcome.finished) << describe(outcome);
  EXPECT_FALSE(outcome.ok);
  EXPECT_EQ(outcome.sqlstate, "08006") << describe(outcome);
  EXPECT_NE(outcome.message.find("keepalive_timeout"), std::string::npos) << describe(outcome);
  EXPECT_LE(outcome.seconds, bound);
  EXPECT_TRUE(wait_until([&] { return daemon.evictions("keepalive_timeout") >= 1; }, 3s))
      << daemon.summary();
  // The idle connections, which no ping probes this time, go the same way at the same moment.
  EXPECT_EQ(daemon.evictions("user_timeout"), 0) << daemon.summary();
}

// Item 8: clients that arrive during the fault, each with a fresh connection and a first query
// (transaction mode), at the given offsets from the fault. Every one must end within
// checkout_timeout + detection bound + slack, healthy or with 53300/08006.
struct Arrival {
  std::chrono::milliseconds after_fault;
  ClientOutcome connect;
  ClientOutcome query;
  double total = 0;
};

std::vector<Arrival> clients_during_fault(DaemonUnderTest& daemon, const DaemonSettings& config,
                                          Clock::time_point faulted_at,
                                          std::vector<std::chrono::milliseconds> offsets) {
  std::vector<std::future<Arrival>> running;
  for (const auto offset : offsets) {
    running.push_back(std::async(std::launch::async, [&daemon, &config, faulted_at, offset] {
      std::this_thread::sleep_until(faulted_at + offset);  // the arrival time is the scenario
      Arrival arrival;
      arrival.after_fault = offset;
      const auto started = Clock::now();
      ProxyClient client = connect_client(daemon, config);
      arrival.connect = client.connect();
      if (arrival.connect.ok) arrival.query = client.query("SELECT 1", kClientDeadline);
      arrival.total = std::chrono::duration<double>(Clock::now() - started).count();
      return arrival;
    }));
  }
  std::vector<Arrival> arrivals;
  for (auto& arrival : running) arrivals.push_back(arrival.get());
  return arrivals;
}

void expect_no_hang(const std::vector<Arrival>& arrivals, double bound, const char* fault) {
  for (const auto& arrival : arrivals) {
    const auto& last = arrival.connect.ok ? arrival.query : arrival.connect;
    std::printf("%s, client arriving %.1f s after: connect %s; %s; total %.3f s (bound %.1f s)\n",
                fault, seconds(arrival.after_fault), describe(arrival.connect).c_str(),
                arrival.connect.ok ? ("query " + describe(arrival.query)).c_str() : "no query",
                arrival.total, bound);
    EXPECT_TRUE(last.finished) << fault << ": " << describe(last);
    if (!last.ok) {
      EXPECT_TRUE(last.sqlstate == "53300" || last.sqlstate == "08006")
          << fault << ": the error does not say why: " << describe(last);
      EXPECT_FALSE(last.message.empty());
    }
    EXPECT_LE(arrival.total, bound) << fault;
  }
}

TEST_F(FaultTest, ClientsArrivingDuringABlackHoleGetAConnectionOrAnErrorInTime) {
  auto config = settings();
  config.pool_mode = "transaction";
  config.checkout_timeout = 2000ms;
  auto& daemon = start_daemon(config);
  ASSERT_TRUE(wait_warm());
  // A client that finds a connection not yet known dead may have its query relayed into the
  // silent path (user_timeout), or find it dead at checkout (validation ping, ping_timeout).
  const double detection =
      std::max({seconds(config.user_timeout), ping_death(config).count(),
                kernel_keepalive_death(config).count()});
  const double bound = seconds(config.checkout_timeout) + detection + kSlack;

  const auto faulted_at = Clock::now();
  server().black_hole();
  // At once (the pool still holds the connections), while they are being found dead, and once
  // the pool is empty and every connect attempt times out.
  const auto arrivals = clients_during_fault(daemon, config, faulted_at, {50ms, 1500ms, 6000ms});
  expect_no_hang(arrivals, bound, "black hole");
  EXPECT_TRUE(daemon.running());
}

TEST_F(FaultTest, ClientsArrivingWhileTheServerIsFrozenGetAnErrorInTime) {
  auto config = settings();
  config.pool_mode = "transaction";
  config.checkout_timeout = 2000ms;
  auto& daemon = start_daemon(config);
  ASSERT_TRUE(wait_warm());
  // The kernel still ACKs: only pings (the validation at checkout included) and connect_timeout
  // can tell. A query relayed to a server that was heard from less than validate_after_idle
  // (1 s) before it froze waits like any long query, so clients arrive after that.
  const double bound = seconds(config.checkout_timeout) + ping_death(config).count() + kSlack;
  std::vector<Arrival> arrivals;
  {
    for (const pid_t pid : server().cluster().child_pids()) ::kill(pid, SIGSTOP);
    const auto frozen_at = Clock::now();
    arrivals = clients_during_fault(daemon, config, frozen_at, {1200ms, 6000ms});
    server().thaw();
  }
  expect_no_hang(arrivals, bound, "frozen server");
  for (const auto& arrival : arrivals) {
    // No client can have been served by a frozen server.
    EXPECT_FALSE(arrival.connect.ok && arrival.query.ok);
  }
  EXPECT_TRUE(daemon.running());
}

}  // namespace
}  // namespace pgvigil::testing
