#pragma once
// The real pgvigil binary with one pool, "app", watched from the outside the way an operator
// would: its /metrics and /readyz over HTTP, its log, its CPU time from /proc.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "tests/support/daemon_process.hpp"
#include "tests/support/prometheus_text.hpp"

namespace pgvigil::testing {

using Seconds = std::chrono::duration<double>;

// The config of one test: aggressive defaults so that every death is found in seconds.
struct DaemonSettings {
  std::string host;
  std::uint16_t port = 5432;
  std::string dbname = "postgres";
  std::string user = "postgres";
  std::string password_file;  // "" for none
  std::string application_name = "pgvigil_faults";

  std::chrono::seconds keepalive_idle{2};
  std::chrono::seconds keepalive_interval{1};
  int keepalive_count = 2;
  std::chrono::milliseconds user_timeout{4000};  // 0: the kernel's default
  std::chrono::milliseconds ping_interval{2000};
  std::chrono::milliseconds ping_timeout{1000};
  int min_idle = 2;
  std::chrono::milliseconds connect_timeout{1000};
  std::chrono::milliseconds reconnect_initial{100};
  std::chrono::milliseconds reconnect_max{1000};
  // The client-facing proxy: clients log in to database "app" as `user`, with trust.
  std::string pool_mode = "transaction";  // or "session"
  std::chrono::milliseconds checkout_timeout{5000};
  bool fail_fast = false;
  std::uint16_t listen_port = 0;  // 0: a free port, chosen by DaemonUnderTest::start

  std::string to_yaml(std::uint16_t admin_port) const;
};

class DaemonUnderTest {
 public:
  // Starts the binary (PGVIGIL_BINARY) and waits until /metrics answers. Throws
  // std::runtime_error with the daemon's output when it does not come up within 10 s.
  static std::unique_ptr<DaemonUnderTest> start(const DaemonSettings& settings);

  DaemonProcess& process() { return *process_; }
  // Where clients connect (127.0.0.1), and the database name they ask for.
  std::uint16_t client_port() const { return client_port_; }
  static constexpr const char* database() { return "app"; }
  std::string log() const { return process_->log_text(); }
  bool running() { return process_->running(); }

  // The /metrics page; "" while it cannot be fetched.
  std::string metrics_page() const;
  // One series of pool "app" (labels other than pool given), summed over unnamed labels; 0 when
  // absent or unreachable.
  double metric(const std::string& name, const Labels& labels = {}) const;
  double evictions(const std::string& reason) const;
  double connect_failures(const std::string& cause = "") const;
  double idle() const { return metric("pgvigil_server_connections", {{"state", "idle"}}); }
  // How many detections the histogram counted for reason, and their summed latency.
  double detection_count(const std::string& reason) const;
  double detection_sum(const std::string& reason) const;
  // Every non-zero eviction and connect-failure series, for failure messages.
  std::string summary() const;
  // HTTP status of /readyz, 0 when it cannot be fetched.
  int readyz_status() const;
  // utime + stime of the daemon so far, from /proc/<pid>/stat.
  Seconds cpu_time() const;

 private:
  DaemonUnderTest() = default;

  std::unique_ptr<DaemonProcess> process_;
  std::uint16_t admin_port_ = 0;
  std::uint16_t client_port_ = 0;
};

}  // namespace pgvigil::testing
