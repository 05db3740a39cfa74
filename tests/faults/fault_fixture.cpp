#include "tests/faults/fault_fixture.hpp"

#include <cstdio>
#include <thread>

#include "tests/support/subprocess.hpp"
#include "tests/support/wait_until.hpp"

namespace pgvigil::testing {

namespace {

// Made once before the first test and removed after the last, also when tests failed.
class SharedServer : public ::testing::Environment {
 public:
  void SetUp() override;
  void TearDown() override { server.reset(); }

  std::unique_ptr<NetnsServer> server;
  std::string error;  // why server is null
};

SharedServer* const shared = [] {
  auto* environment = new SharedServer();
  ::testing::AddGlobalTestEnvironment(environment);  // gtest owns it from here
  return environment;
}();

void SharedServer::SetUp() {
  PgCluster::Options options;
  options.max_connections = kMaxConnections;
  options.hba_lines = {std::string("host all ") + kScramUser + " all scram-sha-256"};
  // Server-side keep-alive: backends whose client vanished behind a black hole go away within
  // seconds instead of two hours, so they do not eat the few connection slots.
  options.conf_lines = {"tcp_keepalives_idle = 1", "tcp_keepalives_interval = 1",
                        "tcp_keepalives_count = 2", "log_connections = on",
                        "log_disconnections = on"};
  try {
    server = NetnsServer::start(std::move(options));
  } catch (const std::exception& failure) {
    // Not thrown on: every test then fails with this message, none is skipped.
    error = failure.what();
  }
}

}  // namespace

void FaultTest::SetUp() {
  server_ = shared->server.get();
  ASSERT_TRUE(server_) << "the network-namespace server could not be set up (this suite needs "
                          "root, iproute2 and nftables):\n"
                       << shared->error;
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  application_name_ = std::string("pgvigil_faults_") + info->name();
  for (auto& c : application_name_) {
    if (c == '/') c = '_';
  }
  if (application_name_.size() > 60) application_name_.resize(60);
  server_->thaw();
  server_->heal();
  cluster().start();
  // Leftovers of earlier tests (e.g. backends whose client vanished in a black hole).
  cluster().execute(
      "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
      "WHERE application_name LIKE 'pgvigil_faults%' AND pid <> pg_backend_pid()");
}

void FaultTest::TearDown() {
  if (daemon_ && HasFailure()) {
    std::printf("--- pgvigil output (tail) ---\n%s\n--- metrics ---\n%s",
                file_tail(daemon_->process().log_path(), 6000).c_str(),
                daemon_->summary().c_str());
  }
  daemon_.reset();
  if (server_) server_->thaw();
}

DaemonSettings FaultTest::settings() const {
  DaemonSettings settings;
  settings.host = server_->address();
  settings.port = server_->port();
  settings.application_name = application_name_;
  return settings;
}

DaemonUnderTest& FaultTest::start_daemon(const DaemonSettings& settings) {
  daemon_ = DaemonUnderTest::start(settings);
  return *daemon_;
}

::testing::AssertionResult FaultTest::wait_warm(int idle) {
  const bool warm = wait_until(
      [&] { return daemon_->idle() == idle && daemon_->readyz_status() == 200; },
      std::chrono::seconds(10), std::chrono::milliseconds(50));
  if (warm) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "the pool did not warm up to " << idle
                                       << " idle connections with /readyz 200 within 10 s:\n"
                                       << daemon_->summary();
}

std::vector<pid_t> FaultTest::backends() const {
  return server_->cluster().backend_pids(application_name_);
}

std::optional<double> seconds_until(const std::function<bool()>& predicate,
                                    Clock::time_point since, std::chrono::milliseconds timeout) {
  std::optional<double> elapsed;
  wait_until(
      [&] {
        if (!predicate()) return false;
        elapsed = std::chrono::duration<double>(Clock::now() - since).count();
        return true;
      },
      timeout, std::chrono::milliseconds(50));
  return elapsed;
}

double seconds(std::chrono::milliseconds value) { return static_cast<double>(value.count()) / 1000; }

}  // namespace pgvigil::testing
