#include "tests/faults/daemon_under_test.hpp"

#include <unistd.h>

#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>

#include "tests/metrics/http_client.hpp"
#include "tests/support/admin_metrics.hpp"
#include "tests/support/free_port.hpp"
#include "tests/support/wait_until.hpp"

#ifndef PGVIGIL_BINARY
#error "PGVIGIL_BINARY must name the pgvigil binary (pgvigil_add_test passes it)"
#endif

namespace pgvigil::testing {
namespace {

constexpr const char* kPool = "app";

std::string duration(std::chrono::milliseconds value) {
  if (value.count() == 0) return "0";
  if (value.count() % 1000 == 0) return std::to_string(value.count() / 1000) + "s";
  return std::to_string(value.count()) + "ms";
}

}  // namespace

std::string DaemonSettings::to_yaml(std::uint16_t admin_port) const {
  std::ostringstream yaml;
  // One worker: the pool lives on one loop anyway, and CPU use is then easy to read.
  yaml << "workers: 1\n"
       << "log: {level: info, format: text}\n"
       << "admin: {listen: \"127.0.0.1:" << admin_port << "\"}\n"
       << "listen: {address: \"127.0.0.1:" << listen_port << "\"}\n"
       << "keepalive: {idle: " << duration(keepalive_idle) << ", interval: "
       << duration(keepalive_interval) << ", count: " << keepalive_count
       << ", user_timeout: " << duration(user_timeout) << "}\n"
       << "ping: {interval: " << duration(ping_interval) << ", timeout: " << duration(ping_timeout)
       << "}\n"
       << "pool:\n"
       << "  min_idle: " << min_idle << "\n"
       << "  max_size: 4\n"
       << "  connect_timeout: " << duration(connect_timeout) << "\n"
       << "  checkout_timeout: " << duration(checkout_timeout) << "\n"
       << "  fail_fast: " << (fail_fast ? "true" : "false") << "\n"
       << "  reconnect: {initial_delay: " << duration(reconnect_initial)
       << ", max_delay: " << duration(reconnect_max)
       << ", max_delay_while_clients_wait: " << duration(reconnect_max) << "}\n"
       << "databases:\n"
       << "  " << kPool << ":\n"
       << "    host: \"" << host << "\"\n"
       << "    port: " << port << "\n"
       << "    dbname: \"" << dbname << "\"\n"
       << "    user: \"" << user << "\"\n"
       << "    application_name: \"" << application_name << "\"\n"
       << "    sslmode: disable\n"
       << "    pool_mode: " << pool_mode << "\n";
  if (!password_file.empty()) yaml << "    password_file: \"" << password_file << "\"\n";
  return yaml.str();
}

std::unique_ptr<DaemonUnderTest> DaemonUnderTest::start(const DaemonSettings& settings) {
  std::unique_ptr<DaemonUnderTest> daemon(new DaemonUnderTest());
  daemon->admin_port_ = free_tcp_port();
  auto chosen = settings;
  if (chosen.listen_port == 0) {
    // Two free ports in a row can be the same one while neither is bound yet.
    do chosen.listen_port = free_tcp_port();
    while (chosen.listen_port == daemon->admin_port_);
  }
  daemon->client_port_ = chosen.listen_port;
  daemon->process_ = DaemonProcess::start(PGVIGIL_BINARY, chosen.to_yaml(daemon->admin_port_));
  const bool up = wait_until(
      [&] { return !daemon->metrics_page().empty() || !daemon->running(); },
      std::chrono::seconds(10), std::chrono::milliseconds(50));
  if (!up || !daemon->running()) {
    throw std::runtime_error("pgvigil did not serve /metrics within 10 s; its output:\n" +
                             daemon->log());
  }
  return daemon;
}

std::string DaemonUnderTest::metrics_page() const { return testing::metrics_page(admin_port_); }

double DaemonUnderTest::metric(const std::string& name, const Labels& labels) const {
  auto all = labels;
  all["pool"] = kPool;
  return testing::metric(admin_port_, name, all).value_or(0);
}

double DaemonUnderTest::evictions(const std::string& reason) const {
  return metric("pgvigil_evictions_total", {{"reason", reason}});
}

double DaemonUnderTest::connect_failures(const std::string& cause) const {
  if (cause.empty()) return metric("pgvigil_connect_failures_total");
  return metric("pgvigil_connect_failures_total", {{"cause", cause}});
}

double DaemonUnderTest::detection_count(const std::string& reason) const {
  return metric("pgvigil_detection_latency_seconds_count", {{"reason", reason}});
}

double DaemonUnderTest::detection_sum(const std::string& reason) const {
  return metric("pgvigil_detection_latency_seconds_sum", {{"reason", reason}});
}

std::string DaemonUnderTest::summary() const {
  std::ostringstream text;
  const auto page = metrics_page();
  if (page.empty()) return "(no /metrics page)";
  for (const auto& sample : parse_prometheus_text(page)) {
    const bool wanted = sample.name == "pgvigil_evictions_total" ||
                        sample.name == "pgvigil_connect_failures_total" ||
                        sample.name == "pgvigil_server_connections";
    if (!wanted || sample.value == 0) continue;
    text << sample.name << "{";
    for (const auto& [key, value] : sample.labels) {
      if (key != "pool") text << key << "=" << value;
    }
    text << "} " << sample.value << "\n";
  }
  return text.str();
}

int DaemonUnderTest::readyz_status() const {
  try {
    return test::http_get("127.0.0.1", admin_port_, "/readyz", std::chrono::milliseconds(2000))
        .status;
  } catch (const std::exception&) {
    return 0;
  }
}

Seconds DaemonUnderTest::cpu_time() const {
  std::ifstream in("/proc/" + std::to_string(process_->pid()) + "/stat");
  const std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // "pid (comm) state ppid ..."; utime and stime are fields 14 and 15, i.e. the 12th and 13th
  // after the closing parenthesis (comm may itself contain spaces or parentheses).
  const auto close = stat.rfind(')');
  if (close == std::string::npos) throw std::runtime_error("cannot read /proc/<pid>/stat");
  std::istringstream fields(stat.substr(close + 2));
  std::string field;
  for (int i = 3; i <= 13; ++i) fields >> field;
  long long utime = 0;
  long long stime = 0;
  if (!(fields >> utime >> stime)) throw std::runtime_error("cannot parse /proc/<pid>/stat");
  return Seconds(static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK)));
}

}  // namespace pgvigil::testing
