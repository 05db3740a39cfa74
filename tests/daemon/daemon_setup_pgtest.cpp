// How the real binary sets itself up. `workers: 0` starts one event loop per core the process
// may run on, not per core of the machine: started with a one-CPU affinity mask (as `taskset -c
// 0`, a cpuset cgroup or Kubernetes' static CPU manager would give it), it runs one worker and one
// pool shard, says why in its start-up line, and serves clients. A client's accepted socket has
// TCP_NODELAY (set once on the listener, which Linux clones into every accepted socket), read back
// from pgvigil's own socket (root: pidfd_getfd).

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>

#include <chrono>
#include <string>

#include "tests/daemon/daemon_test_util.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/pg_cluster.hpp"

namespace pgvigil::testing {
namespace {

using std::chrono::seconds;

std::string config_for(const PgCluster& pg, const DaemonPorts& ports) {
  return "workers: 0\n"
         "admin: {listen: \"127.0.0.1:" +
         std::to_string(ports.admin) + "\"}\n" +
         "listen: {address: \"127.0.0.1:" + std::to_string(ports.listen) + "\"}\n" +
         "log: {level: info}\n"
         "databases:\n"
         "  app: {host: 127.0.0.1, port: " +
         std::to_string(pg.port()) + ", dbname: postgres, user: postgres, sslmode: disable}\n";
}

// The daemon inherits the affinity mask of the thread that starts it.
std::unique_ptr<DaemonProcess> start_on_one_cpu(const std::string& config) {
  cpu_set_t saved;
  EXPECT_EQ(::sched_getaffinity(0, sizeof saved, &saved), 0);
  int first = 0;
  while (first < CPU_SETSIZE && !CPU_ISSET(first, &saved)) ++first;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(first, &one);
  EXPECT_EQ(::sched_setaffinity(0, sizeof one, &one), 0);
  auto daemon = DaemonProcess::start(PGVIGIL_BINARY, config);
  ::sched_setaffinity(0, sizeof saved, &saved);
  return daemon;
}

TEST(DaemonSetupPgTest, OneCpuAllowedRunsOneWorkerAndServesClients) {
  auto pg = PgCluster::start_new();
  const DaemonPorts ports;
  auto daemon = start_on_one_cpu(config_for(*pg, ports));
  ASSERT_TRUE(daemon->wait_for_log(
      "with 1 worker(s) (workers: 0, one per core: 1 CPU(s) in the affinity mask)", seconds(10)))
      << daemon->log_text();
  ASSERT_TRUE(daemon->wait_for_log("pool app: server", seconds(5))) << daemon->log_text();
  EXPECT_EQ(daemon->log_text().find("split into"), std::string::npos) << "one worker, one shard:\n"
                                                                      << daemon->log_text();

  Client client = connect_client(ports.listen, "app");
  ASSERT_EQ(PQstatus(client.get()), CONNECTION_OK) << PQerrorMessage(client.get());
  EXPECT_EQ(run(client.get(), "SELECT 1"), "");
}

// The client's own end: its local port is what pgvigil's accepted socket is connected to.
std::uint16_t local_port_of(PGconn* client) {
  sockaddr_in local{};
  socklen_t length = sizeof local;
  if (::getsockname(PQsocket(client), reinterpret_cast<sockaddr*>(&local), &length) != 0) return 0;
  return ntohs(local.sin_port);
}

TEST(DaemonSetupPgTest, AnAcceptedClientSocketHasNoDelay) {
  // Without TCP_NODELAY, Nagle holds a small reply back behind an unacknowledged one.
  auto pg = PgCluster::start_new();
  const DaemonPorts ports;
  auto daemon = DaemonProcess::start(PGVIGIL_BINARY, config_for(*pg, ports));
  ASSERT_TRUE(daemon->wait_for_log("accepting PostgreSQL clients", seconds(10)))
      << daemon->log_text();
  Client client = connect_client(ports.listen, "app");
  ASSERT_EQ(PQstatus(client.get()), CONNECTION_OK) << PQerrorMessage(client.get());
  ASSERT_EQ(run(client.get(), "SELECT 1"), "");

  const auto accepted = sockets_connected_to(daemon->pid(), local_port_of(client.get()));
  ASSERT_EQ(accepted.size(), 1u) << "pgvigil's socket from this client (root reads it)";
  EXPECT_EQ(accepted.front().no_delay, 1);
}

}  // namespace
}  // namespace pgvigil::testing
