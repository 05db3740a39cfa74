// listen.pack_until_busy on the real binary with two workers: new clients, TCP and Unix, all go
// to worker 0 while it is idle; with 0 they are spread over both; and once worker 0 is busier
// than the mark (a client running queries on it), new clients go to worker 1 and are served
// there. What each worker took is read from pgvigil's own counter,
// pgvigil_worker_clients_accepted_total.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "tests/daemon/daemon_test_util.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/pg_cluster.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/wait_until.hpp"

namespace pgvigil::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

std::string config_for(const PgCluster& pg, const DaemonPorts& ports, const std::string& listen) {
  return "workers: 2\n"
         "admin: {listen: \"127.0.0.1:" +
         std::to_string(ports.admin) + "\"}\n" +
         "listen: {address: \"127.0.0.1:" + std::to_string(ports.listen) + "\"" + listen + "}\n" +
         "databases:\n"
         "  app: {host: 127.0.0.1, port: " +
         std::to_string(pg.port()) + ", dbname: postgres, user: postgres, sslmode: disable}\n";
}

double accepted_by(const DaemonPorts& ports, int worker) {
  return metric(ports.admin, "pgvigil_worker_clients_accepted_total",
                {{"worker", std::to_string(worker)}})
      .value_or(-1);
}

std::unique_ptr<DaemonProcess> start(const std::string& config) {
  auto daemon = DaemonProcess::start(PGVIGIL_BINARY, config);
  EXPECT_TRUE(daemon->wait_for_log("accepting PostgreSQL clients", seconds(10)))
      << daemon->log_text();
  return daemon;
}

TEST(WorkerPlacementPgTest, IdleWorkerZeroTakesEveryNewClient) {
  auto pg = PgCluster::start_new();
  const DaemonPorts ports;
  TempDir sockets("pgvigil-placement-");
  auto daemon = start(config_for(
      *pg, ports,
      ", unix_socket_dir: \"" + sockets.path().string() + "\", max_startup_per_address: 0"));
  std::vector<Client> clients;
  for (int i = 0; i < 8; ++i) {
    clients.push_back(connect_client(ports.listen, "app"));
    const std::string over_unix = "host=" + sockets.path().string() +
                                  " port=" + std::to_string(ports.listen) +
                                  " dbname=app user=postgres";
    clients.emplace_back(PQconnectdb(over_unix.c_str()));
  }
  for (auto& client : clients) {
    ASSERT_EQ(PQstatus(client.get()), CONNECTION_OK) << PQerrorMessage(client.get());
    EXPECT_EQ(run(client.get(), "SELECT 1"), "");
  }
  EXPECT_EQ(accepted_by(ports, 0), 16);
  EXPECT_EQ(accepted_by(ports, 1), 0);
  EXPECT_TRUE(metric(ports.admin, "pgvigil_worker_busy_ratio", {{"worker", "1"}}).has_value());
}

TEST(WorkerPlacementPgTest, ZeroSpreadsNewClientsOverEveryWorker) {
  auto pg = PgCluster::start_new();
  const DaemonPorts ports;
  auto daemon = start(config_for(*pg, ports, ", pack_until_busy: 0"));
  // By the kernel's hash of each connection's ports: 32 all on one of two workers would be a
  // chance of 2^-31.
  std::vector<Client> clients;
  for (int i = 0; i < 32; ++i) {
    clients.push_back(connect_client(ports.listen, "app"));
    ASSERT_EQ(PQstatus(clients.back().get()), CONNECTION_OK)
        << PQerrorMessage(clients.back().get());
  }
  EXPECT_GT(accepted_by(ports, 0), 0);
  EXPECT_GT(accepted_by(ports, 1), 0);
  EXPECT_EQ(accepted_by(ports, 0) + accepted_by(ports, 1), 32);
}

TEST(WorkerPlacementPgTest, ABusyWorkerZeroSendsNewClientsToWorkerOne) {
  auto pg = PgCluster::start_new();
  const DaemonPorts ports;
  // 1 % of a core: a client running queries back to back keeps worker 0 over it, and the idle
  // worker 1 (a timer, its shard's pings) stays under it.
  auto daemon = start(config_for(*pg, ports, ", pack_until_busy: 0.01"));
  Client busy = connect_client(ports.listen, "app");
  ASSERT_EQ(PQstatus(busy.get()), CONNECTION_OK) << PQerrorMessage(busy.get());
  ASSERT_EQ(accepted_by(ports, 0), 1);
  std::atomic<bool> stop{false};
  std::string load_error;
  std::thread load([&] {
    while (!stop && load_error.empty()) load_error = run(busy.get(), "SELECT 1");
  });
  std::vector<Client> later;
  const bool moved = wait_until(
      [&] {
        later.push_back(connect_client(ports.listen, "app"));
        return accepted_by(ports, 1) >= 1;
      },
      seconds(20), milliseconds(100));
  stop = true;
  load.join();
  EXPECT_EQ(load_error, "");
  ASSERT_TRUE(moved)
      << "worker 0 busy: "
      << metric(ports.admin, "pgvigil_worker_busy_ratio", {{"worker", "0"}}).value_or(-1);
  // The client worker 1 took is served there, by that worker's shard of the pool.
  EXPECT_EQ(PQstatus(later.back().get()), CONNECTION_OK) << PQerrorMessage(later.back().get());
  EXPECT_EQ(run(later.back().get(), "SELECT 1"), "");
}

}  // namespace
}  // namespace pgvigil::testing
