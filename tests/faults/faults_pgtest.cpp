// Every kind of connection death on the path to the server, injected for real (nftables in a
// network namespace, signals to the server, restarts), and the real pgvigil binary must find
// it within its bound, say why in /metrics, and recover. Each test prints what it measured.

#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <future>

#include "tests/faults/detection_bounds.hpp"
#include "tests/faults/fault_fixture.hpp"
#include "tests/support/wait_until.hpp"

namespace pgvigil::testing {
namespace {

using namespace std::chrono_literals;

// The daemon's own view of the detections: how many and the mean latency from the last sign of
// life, per reason, as its histogram recorded them.
void print_histogram(DaemonUnderTest& daemon, const std::vector<std::string>& reasons) {
  for (const auto& reason : reasons) {
    const double count = daemon.detection_count(reason);
    if (count == 0) continue;
    std::printf("  histogram %s: count %.0f, mean detection latency %.3f s\n", reason.c_str(),
                count, daemon.detection_sum(reason) / count);
  }
}

double sum_evictions(DaemonUnderTest& daemon, const std::vector<std::string>& reasons) {
  double total = 0;
  for (const auto& reason : reasons) total += daemon.evictions(reason);
  return total;
}

const std::vector<std::string> kDeathReasons = {
    "server_closed", "server_error", "keepalive_timeout", "user_timeout", "ping_timeout",
    "ping_failed",   "checkout_check_failed", "server_down"};

// After a fault was healed: /readyz 200 and min_idle idle connections, in seconds from healed_at.
std::optional<double> refill_time(DaemonUnderTest& daemon, Clock::time_point healed_at,
                                  std::chrono::milliseconds timeout) {
  return seconds_until([&] { return daemon.readyz_status() == 200 && daemon.idle() == 2; },
                       healed_at, timeout);
}

TEST_F(FaultTest, BlackHoledIdleConnectionsAreEvictedWithinTheBoundAndThePoolRefills) {
  const auto config = settings();
  auto& daemon = start_daemon(config);
  ASSERT_TRUE(wait_warm());
  const double bound =
      std::min(kernel_keepalive_death(config), ping_death(config)).count() + kSlack;

  const auto faulted_at = Clock::now();
  server().black_hole();
  const std::vector<std::string> reasons = {"keepalive_timeout", "ping_timeout"};
  const auto first = seconds_until([&] { return sum_evictions(daemon, reasons) >= 1; },
                                   faulted_at, std::chrono::milliseconds(int(bound * 1000) + 5000));
  const auto all = seconds_until([&] { return sum_evictions(daemon, reasons) >= 2; }, faulted_at,
                                 std::chrono::milliseconds(int(bound * 1000) + 5000));
  ASSERT_TRUE(first && all) << "black-holed connections not evicted as keepalive_timeout or "
                               "ping_timeout:\n"
                            << daemon.summary();
  std::printf("black hole, pings on: first eviction %.3f s, all %.3f s after the fault "
              "(bound %.1f s); keepalive_timeout %.0f, ping_timeout %.0f\n",
              *first, *all, bound, daemon.evictions("keepalive_timeout"),
              daemon.evictions("ping_timeout"));
  print_histogram(daemon, reasons);
  EXPECT_LE(*all, bound);
  EXPECT_EQ(sum_evictions(daemon, kDeathReasons), 2) << daemon.summary();
  EXPECT_GE(daemon.detection_count("keepalive_timeout") + daemon.detection_count("ping_timeout"),
            2);
  EXPECT_TRUE(wait_until([&] { return daemon.readyz_status() == 503; }, 2s))
      << "/readyz still says ready with every connection dead";

  const auto healed_at = Clock::now();
  server().heal();
  const double refill_bound = seconds(config.reconnect_max) + kSlack;
  const auto refilled = refill_time(daemon, healed_at, 10s);
  ASSERT_TRUE(refilled) << "the pool did not refill after heal():\n" << daemon.summary();
  std::printf("black hole healed: /readyz 200 and 2 idle after %.3f s (bound %.1f s)\n", *refilled,
              refill_bound);
  EXPECT_LE(*refilled, refill_bound);
}

// Pings effectively off: kernel keep-alive alone must find the silent path. Run with
// user_timeout equal to idle + interval * count (the advice), off, longer and shorter, because
// TCP_USER_TIMEOUT changes when Linux gives up on a keep-alive sequence (kernel_keepalive_death).
class KeepaliveOnly : public FaultTest,
                      public ::testing::WithParamInterface<std::chrono::milliseconds> {};

TEST_P(KeepaliveOnly, BlackHoledIdleConnectionsAreEvictedAsKeepaliveTimeout) {
  auto config = settings();
  config.user_timeout = GetParam();
  config.ping_interval = 10min;  // longer than the test: no ping will be sent
  auto& daemon = start_daemon(config);
  ASSERT_TRUE(wait_warm());
  const double kernel = kernel_keepalive_death(config).count();
  const double bound = kernel + kSlack;

  const auto faulted_at = Clock::now();
  server().black_hole();
  // The first connection the kernel gives up on makes the server suspect, and the other one is
  // pinged at once (pool/server_health.hpp): unless the kernel ends it within the same moment,
  // it goes as ping_timeout. Keep-alive finds at least the first; both go within the bound.
  const auto all = seconds_until(
      [&] {
        return daemon.evictions("keepalive_timeout") >= 1 &&
               sum_evictions(daemon, kDeathReasons) >= 2;
      },
      faulted_at, std::chrono::milliseconds(int(bound * 1000) + 8000));
  ASSERT_TRUE(all) << "not evicted by keep-alive:\n" << daemon.summary();
  std::printf("black hole, keep-alive only (idle %llds interval %llds count %d user_timeout "
              "%lldms): all evicted %.3f s after the fault; kernel bound %.1f s from the last "
              "ACK, asserted %.1f s\n",
              static_cast<long long>(config.keepalive_idle.count()),
              static_cast<long long>(config.keepalive_interval.count()), config.keepalive_count,
              static_cast<long long>(config.user_timeout.count()), *all, kernel, bound);
  print_histogram(daemon, {"keepalive_timeout"});
  EXPECT_LE(*all, bound);
  EXPECT_EQ(sum_evictions(daemon, kDeathReasons), 2) << daemon.summary();
  EXPECT_GE(daemon.detection_count("keepalive_timeout"), 1);
  // The histogram measures from the last ACK, so it lands on the kernel's tick.
  EXPECT_NEAR(daemon.detection_sum("keepalive_timeout") / daemon.detection_count("keepalive_timeout"),
              kernel, 1.0);
  EXPECT_TRUE(wait_until([&] { return daemon.readyz_status() == 503; }, 2s));
}

INSTANTIATE_TEST_SUITE_P(UserTimeout, KeepaliveOnly, ::testing::Values(4000ms, 0ms, 7000ms, 2500ms),
                         [](const auto& info) {
                           return "user_timeout_" + std::to_string(info.param.count()) + "ms";
                         });

TEST_F(FaultTest, ResetPathIsFoundByTheNextPingAsServerClosed) {
  const auto config = settings();
  auto& daemon = start_daemon(config);
  ASSERT_TRUE(wait_warm());
  const double bound = seconds(config.ping_interval) + 1.0;

  const auto faulted_at = Clock::now();
  server().reset();
  const auto all = seconds_until([&] { return daemon.evictions("server_closed") >= 2; },
                                 faulted_at, std::chrono::milliseconds(int(bound * 1000) + 5000));
  ASSERT_TRUE(all) << "not evicted as server_closed:\n" << daemon.summary();
  std::printf("reset path: all evicted as server_closed %.3f s after the fault (bound %.1f s)\n",
              *all, bound);
  print_histogram(daemon, {"server_closed"});
  EXPECT_LE(*all, bound);
  EXPECT_EQ(sum_evictions(daemon, kDeathReasons), 2) << daemon.summary();
  EXPECT_GE(daemon.detection_count("server_closed"), 2);
  EXPECT_TRUE(wait_until([&] { return daemon.readyz_status() == 503; }, 2s));

  const auto healed_at = Clock::now();
  server().heal();
  const auto refilled = refill_time(daemon, healed_at, 10s);
  ASSERT_TRUE(refilled) << daemon.summary();
  std::printf("reset healed: refilled after %.3f s\n", *refilled);
  EXPECT_LE(*refilled, seconds(config.reconnect_max) + kSlack);
}

// SIGSTOPs the whole server while alive; SIGCONT on destruction whatever the test did.
class FrozenServer {
 public:
  explicit FrozenServer(NetnsServer& server) : server_(server) {
    for (const pid_t pid : server_.cluster().child_pids()) ::kill(pid, SIGSTOP);
  }
  ~FrozenServer() { thaw(); }
  void thaw() { server_.thaw(); }

 private:
  NetnsServer& server_;
};

TEST_F(FaultTest, FrozenServerIsFoundByPingTimeoutAndThePoolRefillsWhenItThaws) {
  const auto config = settings();
  auto& daemon = start_daemon(config);
  ASSERT_TRUE(wait_warm());
  const double bound = ping_death(config).count() + kSlack;
  {
    const auto frozen_at = Clock::now();
    FrozenServer frozen(server());
    const auto all = seconds_until([&] { return daemon.evictions("ping_timeout") >= 2; },
                                   frozen_at, std::chrono::milliseconds(int(bound * 1000) + 5000));
    ASSERT_TRUE(all) << "frozen server's connections not evicted as ping_timeout:\n"
                     << daemon.summary();
    std::printf("frozen server: all evicted as ping_timeout %.3f s after SIGSTOP (bound %.1f s)\n",
                *all, bound);
    print_histogram(daemon, {"ping_timeout"});
    EXPECT_LE(*all, bound);
    // The kernel still ACKs: keep-alive must not be what found it.
    EXPECT_EQ(sum_evictions(daemon, kDeathReasons), 2) << daemon.summary();
    EXPECT_GE(daemon.detection_count("ping_timeout"), 2);
    EXPECT_TRUE(wait_until([&] { return daemon.readyz_status() == 503; }, 2s));
    const auto thawed_at = Clock::now();
    frozen.thaw();
    // A connect attempt caught by the freeze must time out (connect_timeout) before the next.
    const double refill_bound =
        seconds(config.connect_timeout) + seconds(config.reconnect_max) + kSlack;
    const auto refilled = refill_time(daemon, thawed_at, 15s);
    ASSERT_TRUE(refilled) << "the pool did not refill after SIGCONT:\n" << daemon.summary();
    std::printf("frozen server thawed: refilled after %.3f s (bound %.1f s)\n", *refilled,
                refill_bound);
    EXPECT_LE(*refilled, refill_bound);
  }
}

// Restart, crash and failover: the server goes away on purpose or not, and comes back (or a
// different one does) at the same address. Every old connection must go, new ones replace them.
enum class Outage { restart_fast, crash_immediate, failover };

void run_outage(NetnsServer& server, Outage outage) {
  switch (outage) {
    case Outage::restart_fast: server.cluster().restart("fast"); break;
    case Outage::crash_immediate:
      server.cluster().stop("immediate");
      server.cluster().start();
      break;
    case Outage::failover: server.cluster().reset_data_dir_like_failover(); break;
  }
}

class ServerOutage : public FaultTest, public ::testing::WithParamInterface<Outage> {};

TEST_P(ServerOutage, EveryOldConnectionIsEvictedAndThePoolRefills) {
  const auto config = settings();
  auto& daemon = start_daemon(config);
  ASSERT_TRUE(wait_warm());
  const auto old_backends = backends();
  ASSERT_EQ(old_backends.size(), 2u);

  const auto started = Clock::now();
  // In the background, so that the evictions are timed while pg_ctl is still busy.
  auto outage = std::async(std::launch::async, [&] { run_outage(server(), GetParam()); });
  const auto evicted = seconds_until([&] { return sum_evictions(daemon, kDeathReasons) >= 2; },
                                     started, 60s);
  outage.get();  // rethrows what pg_ctl or initdb said
  const auto back_at = Clock::now();
  ASSERT_TRUE(evicted) << daemon.summary();
  const auto refilled = seconds_until(
      [&] {
        if (daemon.readyz_status() != 200 || daemon.idle() != 2) return false;
        const auto now = backends();
        return now.size() == 2 && std::none_of(now.begin(), now.end(), [&](pid_t pid) {
                 return std::find(old_backends.begin(), old_backends.end(), pid) !=
                        old_backends.end();
               });
      },
      back_at, 15s);
  const double server_down_for = std::chrono::duration<double>(back_at - started).count();
  ASSERT_TRUE(refilled) << "no fresh pair of backends after the server came back:\n"
                        << daemon.summary();
  std::printf("outage %d: both old connections evicted %.3f s after it began (server back after "
              "%.3f s), refilled %.3f s after; evictions:\n%s",
              static_cast<int>(GetParam()), *evicted, server_down_for, *refilled,
              daemon.summary().c_str());
  print_histogram(daemon, kDeathReasons);
  // Exactly the two old connections died; nothing else was evicted; the histogram saw both.
  EXPECT_EQ(sum_evictions(daemon, kDeathReasons), 2);
  double detections = 0;
  for (const auto& reason : kDeathReasons) detections += daemon.detection_count(reason);
  EXPECT_EQ(detections, 2);
  // The server announces these shutdowns (FATAL or EOF), so they are found at once.
  EXPECT_LE(*evicted, server_down_for + 1.0);
  EXPECT_LE(*refilled, seconds(config.reconnect_max) + kSlack);
  EXPECT_TRUE(daemon.running());
}

INSTANTIATE_TEST_SUITE_P(Kinds, ServerOutage,
                         ::testing::Values(Outage::restart_fast, Outage::crash_immediate,
                                           Outage::failover),
                         [](const auto& info) {
                           switch (info.param) {
                             case Outage::restart_fast: return std::string("restart_fast");
                             case Outage::crash_immediate: return std::string("crash_immediate");
                             case Outage::failover: return std::string("failover");
                           }
                           return std::string("unknown");
                         });

}  // namespace
}  // namespace pgvigil::testing
