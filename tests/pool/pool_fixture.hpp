#pragma once
// Runs a real Pool on its own event-loop thread against a real PostgreSQL, and gives the test
// thread blocking helpers: checkout, metric values, backend pids.

#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <memory>
#include <optional>
#include <thread>

#include "metrics/registry.hpp"
#include "pool/pool.hpp"
#include "pool/server_connection.hpp"
#include "tests/support/pg_cluster.hpp"

namespace pgvigil::pool {

class PoolFixture : public ::testing::Test {
 protected:
  static void SetUpTestSuite();
  static void TearDownTestSuite();
  void SetUp() override;
  void TearDown() override;

  // Small, fast settings; each test gets its own application_name to find its backends.
  PoolConfig fast_config(const testing::PgCluster& server) const;
  std::shared_ptr<Pool> start_pool(PoolConfig config);

  CheckoutResult checkout(Milliseconds timeout);
  double metric(const std::string& name, const std::map<std::string, std::string>& labels) const;
  double evictions(const std::string& reason) const;
  std::vector<pid_t> backends(const testing::PgCluster& server) const;

  static std::unique_ptr<testing::PgCluster> shared_server_;
  std::string application_name_;
  metrics::Registry registry_{"test"};
  boost::asio::io_context io_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> guard_;
  std::thread loop_;
  std::shared_ptr<Pool> pool_;
};

}  // namespace pgvigil::pool
