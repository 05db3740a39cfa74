// The real pgvigil binary against a real PostgreSQL, driven from the outside as systemd or an
// operator would: config file, HTTP endpoints, signals, exit codes, log lines. Each test runs its
// own daemon; the suite shares one PostgreSQL, and each daemon gets its own application_name so
// one test never counts another's backends.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>

#include "tests/metrics/http_client.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/free_port.hpp"
#include "tests/support/pg_cluster.hpp"
#include "tests/support/prometheus_text.hpp"
#include "tests/support/subprocess.hpp"
#include "tests/support/admin_metrics.hpp"
#include "tests/support/wait_until.hpp"

namespace pgvigil::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

constexpr const char* kHost = "127.0.0.1";

// Settings shared by the tests; the timing ones are what the detection bounds are computed from.
struct DaemonOptions {
  std::string application_name = "pgvigil";
  std::string reconnect_max_delay = "10s";
};

// Fast pings without jitter, so the bounds asserted below are exact: a frozen server is found
// within ping.interval + ping.timeout = 1.3 s.
constexpr milliseconds kPingInterval{1000};
constexpr milliseconds kPingTimeout{300};

std::string daemon_config(const PgCluster& pg, std::uint16_t admin_port,
                          const DaemonOptions& options = {}) {
  return "admin: {listen: \"127.0.0.1:" + std::to_string(admin_port) + "\"}\n" +
         "listen: {address: \"127.0.0.1:" + std::to_string(free_tcp_port()) + "\"}\n" +
         "ping: {interval: 1s, timeout: 300ms, jitter: 0}\n"
         "pool:\n"
         "  min_idle: 2\n"
         "  reconnect: {initial_delay: 100ms, max_delay: " +
         options.reconnect_max_delay + ", max_delay_while_clients_wait: 100ms}\n" +
         "databases:\n"
         "  app:\n"
         "    host: 127.0.0.1\n"
         "    port: " +
         std::to_string(pg.port()) +
         "\n"
         "    dbname: postgres\n"
         "    user: postgres\n"
         "    sslmode: disable\n"
         "    application_name: " +
         options.application_name + "\n";
}

// A GET that reports a refused or failed connection as nullopt instead of throwing.
std::optional<test::HttpResult> try_get(std::uint16_t port, const std::string& path) {
  try {
    return test::http_get(kHost, port, path, seconds(2));
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

int status_of(std::uint16_t port, const std::string& path) {
  const auto result = try_get(port, path);
  return result ? result->status : 0;
}

bool metric_is(std::uint16_t port, std::string_view name, const Labels& labels, double value) {
  return metric(port, name, labels) == value;
}

bool idle_connections_are(std::uint16_t port, double count) {
  return metric_is(port, "pgvigil_server_connections", {{"pool", "app"}, {"state", "idle"}}, count);
}

double evictions(std::uint16_t port, const std::string& reason) {
  return metric(port, "pgvigil_evictions_total", {{"pool", "app"}, {"reason", reason}}).value_or(0);
}

// Whether anything accepts TCP connections on 127.0.0.1:port right now.
bool port_open(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool open = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  ::close(fd);
  return open;
}

// The log line that contains needle, or "".
std::string log_line_with(const std::string& log, const std::string& needle) {
  const std::size_t at = log.find(needle);
  if (at == std::string::npos) return "";
  const std::size_t begin = log.rfind('\n', at);
  const std::size_t end = log.find('\n', at);
  return log.substr(begin == std::string::npos ? 0 : begin + 1,
                    end == std::string::npos ? std::string::npos : end - begin - 1);
}

int count_of(const std::string& text, const std::string& needle) {
  int count = 0;
  for (std::size_t at = text.find(needle); at != std::string::npos;
       at = text.find(needle, at + needle.size())) {
    ++count;
  }
  return count;
}

// Resumes a SIGSTOPped backend however the test ends: a frozen backend would hold up the
// server's shutdown for the rest of the suite.
class ContinueOnExit {
 public:
  explicit ContinueOnExit(pid_t pid) : pid_(pid) {}
  ~ContinueOnExit() { ::kill(pid_, SIGCONT); }
  ContinueOnExit(const ContinueOnExit&) = delete;
  ContinueOnExit& operator=(const ContinueOnExit&) = delete;

 private:
  pid_t pid_;
};

class DaemonPgTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { pg_ = PgCluster::start_new(); }
  static void TearDownTestSuite() { pg_.reset(); }

  void SetUp() override {
    ASSERT_TRUE(pg_) << "PostgreSQL did not start";
    pg_->start();  // a test that stopped it may have failed before starting it again
  }

  // Starts the daemon and waits until its pool is warm: ready, with min_idle idle connections.
  std::unique_ptr<DaemonProcess> start_warm(const DaemonOptions& options) {
    admin_port_ = free_tcp_port();
    auto daemon = DaemonProcess::start(PGVIGIL_BINARY, daemon_config(*pg_, admin_port_, options));
    const bool warm = wait_until(
        [&] {
          return status_of(admin_port_, "/readyz") == 200 && idle_connections_are(admin_port_, 2);
        },
        seconds(15));
    EXPECT_TRUE(warm) << "not warm within 15 s; /readyz: "
                      << (try_get(admin_port_, "/readyz") ? try_get(admin_port_, "/readyz")->body
                                                          : "(no answer)")
                      << "\nlog:\n"
                      << daemon->log_text();
    return daemon;
  }

  static std::unique_ptr<PgCluster> pg_;
  std::uint16_t admin_port_ = 0;
};

std::unique_ptr<PgCluster> DaemonPgTest::pg_;

TEST_F(DaemonPgTest, WarmsUpAndReportsHealthy) {
  auto daemon = start_warm({.application_name = "pgvigil-warm"});
  EXPECT_EQ(status_of(admin_port_, "/healthz"), 200);
  EXPECT_EQ(status_of(admin_port_, "/readyz"), 200);
  // Idle, unless a ping has one of them probing at the moment of the read.
  std::string page;
  EXPECT_TRUE(wait_until(
      [&] {
        page = metrics_page(admin_port_);
        return sample_value(page, "pgvigil_server_connections",
                            {{"pool", "app"}, {"state", "idle"}}) == 2.0;
      },
      seconds(5)))
      << page;
  EXPECT_EQ(pg_->backend_pids("pgvigil-warm").size(), 2u);
}

TEST_F(DaemonPgTest, TerminatedBackendIsEvictedAndReplaced) {
  auto daemon = start_warm({.application_name = "pgvigil-terminate"});
  const auto pids = pg_->backend_pids("pgvigil-terminate");
  ASSERT_EQ(pids.size(), 2u);

  ASSERT_TRUE(pg_->terminate_backend(pids[0]));
  const bool evicted = wait_until(
      [&] {
        return evictions(admin_port_, "server_error") + evictions(admin_port_, "server_closed") ==
               1;
      },
      seconds(1));
  EXPECT_TRUE(evicted) << metrics_page(admin_port_) << "\nlog:\n" << daemon->log_text();
  ASSERT_TRUE(daemon->wait_for_log("reason=server_error", seconds(1))) << daemon->log_text();
  const std::string line = log_line_with(daemon->log_text(), "reason=server_error");
  EXPECT_NE(line.find("detection_latency="), std::string::npos) << line;
  EXPECT_EQ(count_of(daemon->log_text(), "reason=server_"), 1) << daemon->log_text();

  EXPECT_TRUE(wait_until(
      [&] {
        return idle_connections_are(admin_port_, 2) &&
               pg_->backend_pids("pgvigil-terminate").size() == 2;
      },
      seconds(5)))
      << metrics_page(admin_port_);
}

TEST_F(DaemonPgTest, FrozenBackendIsEvictedByPingTimeout) {
  auto daemon = start_warm({.application_name = "pgvigil-frozen"});
  const auto pids = pg_->backend_pids("pgvigil-frozen");
  ASSERT_EQ(pids.size(), 2u);

  ASSERT_EQ(::kill(pids[0], SIGSTOP), 0);
  ContinueOnExit resume(pids[0]);
  const auto stopped_at = Clock::now();
  // The longest a silent server may go unnoticed, plus a second for scheduling and the scrape.
  const auto bound = kPingInterval + kPingTimeout + seconds(1);
  const bool evicted = wait_until([&] { return evictions(admin_port_, "ping_timeout") >= 1; },
                                  std::chrono::duration_cast<milliseconds>(bound));
  const auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - stopped_at);
  EXPECT_TRUE(evicted) << "no ping_timeout eviction within " << bound.count() << " ms\n"
                       << metrics_page(admin_port_) << "\nlog:\n"
                       << daemon->log_text();
  EXPECT_LE(took, bound);
  ::kill(pids[0], SIGCONT);

  EXPECT_GE(metric(admin_port_, "pgvigil_detection_latency_seconds_count",
                   {{"pool", "app"}, {"reason", "ping_timeout"}})
                .value_or(0),
            1.0)
      << metrics_page(admin_port_);
  EXPECT_TRUE(daemon->wait_for_log("reason=ping_timeout", seconds(1))) << daemon->log_text();
  EXPECT_TRUE(wait_until([&] { return idle_connections_are(admin_port_, 2); }, seconds(5)))
      << metrics_page(admin_port_);
}

TEST_F(DaemonPgTest, ServerDownMakesItUnreadyAndItRecovers) {
  const milliseconds max_delay{1000};
  auto daemon = start_warm({.application_name = "pgvigil-down", .reconnect_max_delay = "1s"});

  pg_->stop("fast");
  std::string body;
  const bool unready = wait_until(
      [&] {
        const auto result = try_get(admin_port_, "/readyz");
        if (!result || result->status != 503) return false;
        body = result->body;
        // The first failure may still be "the database system is shutting down"; once the
        // postmaster is gone the reason is a refused connection.
        return body.find("pool app") != std::string::npos &&
               body.find("connect failure") != std::string::npos &&
               body.find("refused") != std::string::npos;
      },
      seconds(10));
  EXPECT_TRUE(unready) << "last /readyz body: " << body << "\nlog:\n" << daemon->log_text();

  const Labels refused{{"pool", "app"}, {"cause", "refused"}};
  double first = 0;
  ASSERT_TRUE(wait_until(
      [&] {
        first = metric(admin_port_, "pgvigil_connect_failures_total", refused).value_or(0);
        return first >= 1;
      },
      seconds(5)))
      << metrics_page(admin_port_);
  // Retries keep going while the server is away (at most max_delay apart).
  EXPECT_TRUE(wait_until(
      [&] {
        return metric(admin_port_, "pgvigil_connect_failures_total", refused).value_or(0) > first;
      },
      max_delay + seconds(2)))
      << metrics_page(admin_port_);

  pg_->start();
  const auto started_at = Clock::now();
  const bool ready =
      wait_until([&] { return status_of(admin_port_, "/readyz") == 200; }, max_delay + seconds(2));
  EXPECT_TRUE(ready) << "not ready "
                     << std::chrono::duration_cast<milliseconds>(Clock::now() - started_at).count()
                     << " ms after the server came back\nlog:\n"
                     << daemon->log_text();
  EXPECT_TRUE(wait_until([&] { return idle_connections_are(admin_port_, 2); }, seconds(5)));
}

TEST_F(DaemonPgTest, PromtoolAcceptsTheLiveMetricsPage) {
  const std::filesystem::path promtool = "/usr/bin/promtool";
  ASSERT_TRUE(std::filesystem::exists(promtool))
      << promtool << " is missing (Debian package prometheus)";
  auto daemon = start_warm({.application_name = "pgvigil-promtool"});

  // Fill the eviction and latency families first, so promtool sees histograms with samples.
  const auto pids = pg_->backend_pids("pgvigil-promtool");
  ASSERT_FALSE(pids.empty());
  ASSERT_TRUE(pg_->terminate_backend(pids[0]));
  ASSERT_TRUE(wait_until(
      [&] {
        return evictions(admin_port_, "server_error") + evictions(admin_port_, "server_closed") >=
               1;
      },
      seconds(5)));

  const auto page = try_get(admin_port_, "/metrics");
  ASSERT_TRUE(page && page->status == 200);
  const auto file = daemon->dir() / "metrics.txt";
  std::ofstream(file) << page->body;
  const auto output = daemon->dir() / "promtool.log";
  const int code =
      run_process({"/bin/sh", "-c", promtool.string() + " check metrics < '" + file.string() + "'"},
                  output, daemon->dir(), seconds(30));
  EXPECT_EQ(code, 0) << file_tail(output) << "\npage:\n" << page->body;
}

TEST_F(DaemonPgTest, MalformedConfigIsFatalWithItsPosition) {
  const std::uint16_t admin_port = free_tcp_port();
  // Line 3, column 9: the value of keepalive.idle.
  const std::string bad = "admin: {listen: \"127.0.0.1:" + std::to_string(admin_port) +
                          "\"}\n"
                          "keepalive:\n"
                          "  idle: 0s\n"
                          "databases:\n"
                          "  app: {host: 127.0.0.1, port: " +
                          std::to_string(pg_->port()) + ", user: postgres}\n";
  const std::string expected = "config.yaml:3:9: keepalive.idle:";

  auto daemon = DaemonProcess::start(PGVIGIL_BINARY, bad);
  const auto started_at = Clock::now();
  bool opened = false;
  std::optional<int> code;
  // Watch the admin port the whole time the process lives: it must never open.
  wait_until(
      [&] {
        opened = opened || port_open(admin_port);
        code = daemon->wait_exit(milliseconds(0));
        return code.has_value();
      },
      seconds(5));
  EXPECT_EQ(code, 1) << daemon->log_text();
  EXPECT_LT(Clock::now() - started_at, seconds(3));
  EXPECT_FALSE(opened);
  EXPECT_FALSE(port_open(admin_port));
  EXPECT_NE(daemon->log_text().find(expected), std::string::npos) << daemon->log_text();

  auto check_bad = DaemonProcess::start(PGVIGIL_BINARY, bad, {"--check"});
  EXPECT_EQ(check_bad->wait_exit(seconds(5)), 1) << check_bad->log_text();
  EXPECT_NE(check_bad->log_text().find(expected), std::string::npos) << check_bad->log_text();

  auto check_good =
      DaemonProcess::start(PGVIGIL_BINARY, daemon_config(*pg_, admin_port), {"--check"});
  EXPECT_EQ(check_good->wait_exit(seconds(5)), 0) << check_good->log_text();
  EXPECT_FALSE(port_open(admin_port));

  auto version = DaemonProcess::start(PGVIGIL_BINARY, bad, {"--version"});
  EXPECT_EQ(version->wait_exit(seconds(5)), 0) << version->log_text();
  EXPECT_NE(version->log_text().find(std::string("pgvigil ") + PGVIGIL_VERSION), std::string::npos)
      << version->log_text();
}

TEST_F(DaemonPgTest, SigtermClosesServerConnectionsAndExitsZero) {
  auto daemon = start_warm({});  // the default application_name, "pgvigil"
  ASSERT_EQ(pg_->backend_pids("pgvigil").size(), 2u);

  ASSERT_TRUE(daemon->send_signal(SIGTERM));
  EXPECT_EQ(daemon->wait_exit(seconds(5)), 0) << daemon->log_text();
  const std::string log = daemon->log_text();
  EXPECT_EQ(count_of(log, "reason=shutdown"), 2) << log;
  // Terminate was sent, so the backends end at once; the wait only covers pg_stat_activity's lag.
  EXPECT_TRUE(wait_until([&] { return pg_->backend_pids("pgvigil").empty(); }, seconds(2)))
      << "backends left behind: " << pg_->backend_pids("pgvigil").size();
}

}  // namespace
}  // namespace pgvigil::testing
