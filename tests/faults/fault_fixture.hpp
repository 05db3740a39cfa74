#pragma once
// The fixture of the fault suite: one NetnsServer shared by every test of the binary (one
// initdb, one namespace; made by a global test environment, so parameterized suites derived
// from FaultTest share it too), each test with its own pgvigil process whose pool has its own
// application_name.
// SetUp puts the shared server back in order (thawed, healed, running, leftovers of earlier
// tests terminated) so that a failed test cannot spoil the next one. A server that cannot be set
// up fails every test: a skip would read as a pass in CI.

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "tests/faults/daemon_under_test.hpp"
#include "tests/faults/netns_server.hpp"

namespace pgvigil::testing {

using Clock = std::chrono::steady_clock;

// The role the shared server's pg_hba checks with scram-sha-256 (everyone else: trust).
inline constexpr const char* kScramUser = "scram_user";
// Small on purpose: the too-many-connections test fills every slot.
inline constexpr int kMaxConnections = 10;

class FaultTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  NetnsServer& server() { return *server_; }
  PgCluster& cluster() { return server_->cluster(); }
  // Settings pointing at the shared server, application_name unique to this test.
  DaemonSettings settings() const;
  DaemonUnderTest& start_daemon(const DaemonSettings& settings);
  DaemonUnderTest& daemon() { return *daemon_; }
  // Waits (up to 10 s) for min_idle idle connections and /readyz 200.
  ::testing::AssertionResult wait_warm(int idle = 2);
  // The backends of this test's pool, seen by the server.
  std::vector<pid_t> backends() const;

  NetnsServer* server_ = nullptr;  // owned by the environment
  std::unique_ptr<DaemonUnderTest> daemon_;
  std::string application_name_;
};

// Polls predicate every 50 ms until it holds: the seconds from `since` to that moment, or
// nullopt at the deadline.
std::optional<double> seconds_until(const std::function<bool()>& predicate,
                                    Clock::time_point since, std::chrono::milliseconds timeout);

double seconds(std::chrono::milliseconds value);

}  // namespace pgvigil::testing
