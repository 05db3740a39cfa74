// The page served on /metrics must pass Prometheus' own linter. promtool comes from the
// `prometheus` Debian package; without it this test fails, since a skipped check would let
// an invalid page through unnoticed.

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "metrics/admin_server.hpp"
#include "metrics/buckets.hpp"
#include "tests/metrics/http_client.hpp"

namespace pgvigil::metrics {
namespace {

using namespace std::chrono_literals;

constexpr const char* kPromtool = "/usr/bin/promtool";

struct CommandResult {
  int exit_code = -1;
  std::string output;
};

CommandResult run_shell(const std::string& command) {
  CommandResult result;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return result;
  std::array<char, 4096> chunk{};
  std::size_t read = 0;
  while ((read = std::fread(chunk.data(), 1, chunk.size(), pipe)) > 0) {
    result.output.append(chunk.data(), read);
  }
  const int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

// A registry with several pools (server and client side) and at least one sample in every
// family, so the linter sees every kind of series the daemon can produce.
void populate(Registry& registry) {
  const PoolLabelSets labels{
      .eviction_reasons = {"server_closed", "server_error", "keepalive_timeout", "user_timeout",
                           "ping_timeout", "ping_failed", "checkout_check_failed", "max_lifetime",
                           "idle_timeout", "dirty_return", "reload", "shutdown"},
      .connect_failure_causes = {"refused", "timeout", "auth", "server_error"},
      .connection_states = {"connecting", "idle", "checked_out", "probing", "closing"},
      .servers = {"db1:5432", "db2:5432"},
  };
  for (const char* name : {"app", "reports"}) {
    const auto pool = registry.add_pool(name, labels);
    pool->record_eviction("db1:5432", "ping_timeout", 7s);
    pool->observe_ping("db1:5432", 400us);
    pool->observe_connect("db1:5432", 15ms);
    pool->record_connect_failure("db1:5432", "refused");
    pool->set_connections("idle", 2);
    pool->record_keepalive_mismatch("db2:5432");
    pool->observe_server_rtt("db1:5432", 250us);
    std::vector<double> checkout_waits(buckets::kCheckoutWait.size() + 1, 0.0);
    checkout_waits[3] = 1;  // one wait of 1 ms (le="0.001")
    pool->observe_checkout_waits(checkout_waits, 0.001);
    pool->record_checkout_timeout();
    const auto clients = registry.add_client_pool(name);
    clients->client_connected();
    clients->client_error("28P01");
    clients->client_error("42P01");  // Counted as class "other".
    clients->relayed(
        {.bytes_to_server = 512, .bytes_to_client = 4096, .queries = 7, .transactions = 3});
  }
  registry.add_pool("gone", labels);
  registry.add_client_pool("gone");
  registry.remove_pool("gone");
  registry.record_config_reload(true);
}

std::string served_page(const Registry& registry) {
  boost::asio::io_context io;
  AdminServer server(io, AdminServerOptions{}, registry, {});
  server.start();
  std::thread io_thread([&] { io.run(); });
  std::string page;
  std::string failure;
  try {
    const auto result = test::http_get("127.0.0.1", server.port(), "/metrics");
    page = result.body;
    if (result.status != 200) failure = "status " + std::to_string(result.status);
  } catch (const std::exception& error) {
    failure = error.what();
  }
  boost::asio::post(io, [&] { server.stop(); });
  io_thread.join();
  EXPECT_EQ(failure, "");
  return page;
}

TEST(Promtool, AcceptsTheServedPage) {
  ASSERT_EQ(::access(kPromtool, X_OK), 0)
      << kPromtool << " is missing: install the Debian package `prometheus`";
  Registry registry("0.1.0");
  populate(registry);
  const std::string page = served_page(registry);
  ASSERT_FALSE(page.empty());

  const auto file = std::filesystem::temp_directory_path() /
                    ("pgvigil_metrics_" + std::to_string(::getpid()) + ".prom");
  std::ofstream(file) << page;
  const auto result =
      run_shell(std::string(kPromtool) + " check metrics < '" + file.string() + "' 2>&1");
  std::filesystem::remove(file);
  EXPECT_EQ(result.exit_code, 0) << "promtool said:\n" << result.output << "\npage:\n" << page;
  EXPECT_EQ(result.output, "") << "promtool lint findings:\n" << result.output;
}

TEST(Promtool, AcceptsAFreshRegistry) {
  ASSERT_EQ(::access(kPromtool, X_OK), 0) << kPromtool << " is missing";
  Registry registry("0.1.0");
  const auto file = std::filesystem::temp_directory_path() /
                    ("pgvigil_metrics_fresh_" + std::to_string(::getpid()) + ".prom");
  std::ofstream(file) << registry.serialize();
  const auto result =
      run_shell(std::string(kPromtool) + " check metrics < '" + file.string() + "' 2>&1");
  std::filesystem::remove(file);
  EXPECT_EQ(result.exit_code, 0) << result.output;
}

}  // namespace
}  // namespace pgvigil::metrics
