// listen.pack_until_busy on the real binary with two workers: new clients, TCP and Unix, all go
// to worker 0 while it is idle; with 0 they are spread over both; once a worker is busier than
// the mark (a client running queries on it), new clients go to the other and are served there;
// and clients that connected while all was idle and got busy later move to worker 1 between two
// transactions, their named prepared statements and startup settings with them. What each
// worker took is read from pgvigil's own counters (pgvigil_worker_clients_accepted_total,
// pgvigil_worker_sessions_moved_in_total).

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <csignal>
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

TEST(WorkerPlacementPgTest, ABusyWorkerSendsNewClientsToTheOther) {
  auto pg = PgCluster::start_new();
  const DaemonPorts ports;
  // 1 % of a core: a client running queries back to back keeps its worker over it, and the
  // idle other worker (a timer, its shard's pings) stays under it. The client runs them inside
  // one transaction, which holds its server connection: it cannot move itself, so its worker
  // stays the busy one. Its worker is usually worker 0; the pool's start-up may have made
  // worker 0 busy for a moment, and then it is worker 1.
  auto daemon = start(config_for(*pg, ports, ", pack_until_busy: 0.01"));
  Client busy = connect_client(ports.listen, "app");
  ASSERT_EQ(PQstatus(busy.get()), CONNECTION_OK) << PQerrorMessage(busy.get());
  const int busy_worker = accepted_by(ports, 0) == 1 ? 0 : 1;
  const int other = 1 - busy_worker;
  ASSERT_EQ(accepted_by(ports, busy_worker), 1);
  ASSERT_EQ(accepted_by(ports, other), 0);
  ASSERT_EQ(run(busy.get(), "BEGIN"), "");
  std::atomic<bool> stop{false};
  std::string load_error;
  std::thread load([&] {
    while (!stop && load_error.empty()) load_error = run(busy.get(), "SELECT 1");
  });
  std::vector<Client> later;
  const bool moved = wait_until(
      [&] {
        later.push_back(connect_client(ports.listen, "app"));
        return accepted_by(ports, other) >= 1;
      },
      seconds(20), milliseconds(100));
  stop = true;
  load.join();
  EXPECT_EQ(load_error, "");
  ASSERT_TRUE(moved) << "busy worker's share: "
                     << metric(ports.admin, "pgvigil_worker_busy_ratio",
                               {{"worker", std::to_string(busy_worker)}})
                            .value_or(-1);
  // The client the other worker took is served there, by that worker's shard of the pool.
  EXPECT_EQ(PQstatus(later.back().get()), CONNECTION_OK) << PQerrorMessage(later.back().get());
  EXPECT_EQ(run(later.back().get(), "SELECT 1"), "");
}

double moved_to(const DaemonPorts& ports, int worker) {
  return metric(ports.admin, "pgvigil_worker_sessions_moved_in_total",
                {{"worker", std::to_string(worker)}})
      .value_or(-1);
}

// `client`'s statement s1 (SELECT $1::int + 1) with `n`: "" when it answers n + 1.
std::string run_s1(PGconn* client, int n) {
  const std::string text = std::to_string(n);
  const char* values[] = {text.c_str()};
  PGresult* result = PQexecPrepared(client, "s1", 1, values, nullptr, nullptr, 0);
  std::string error;
  if (PQresultStatus(result) != PGRES_TUPLES_OK) {
    error = PQerrorMessage(client);
  } else if (std::string(PQgetvalue(result, 0, 0)) != std::to_string(n + 1)) {
    error = std::string("s1 answered ") + PQgetvalue(result, 0, 0) + " to " + text;
  }
  PQclear(result);
  return error;
}

std::string application_name(PGconn* client) {
  PGresult* result = PQexec(client, "SHOW application_name");
  std::string name = PQresultStatus(result) == PGRES_TUPLES_OK ? PQgetvalue(result, 0, 0) : "?";
  PQclear(result);
  return name;
}

TEST(WorkerPlacementPgTest, BusyClientsOfAnIdleStartMoveToTheOtherWorker) {
  auto pg = PgCluster::start_new();
  const DaemonPorts ports;
  // A tenth of a core: four clients running queries back to back keep worker 0 well over it,
  // and their four startups and prepares, done before, stay well under it (20 ms of CPU in a
  // 0.2 s sample).
  auto daemon = start(config_for(*pg, ports, ", pack_until_busy: 0.1"));
  // Connected while everything is idle (a pool filled at start-up): all on worker 0, each with
  // a named statement and a startup setting of its own.
  constexpr int kClients = 4;
  std::vector<Client> clients;
  for (int i = 0; i < kClients; ++i) {
    const std::string conninfo = "host=127.0.0.1 port=" + std::to_string(ports.listen) +
                                 " dbname=app user=postgres application_name=client" +
                                 std::to_string(i);
    clients.emplace_back(PQconnectdb(conninfo.c_str()));
    ASSERT_EQ(PQstatus(clients.back().get()), CONNECTION_OK)
        << PQerrorMessage(clients.back().get());
    PGresult* prepared = PQprepare(clients.back().get(), "s1", "SELECT $1::int + 1", 0, nullptr);
    ASSERT_EQ(PQresultStatus(prepared), PGRES_COMMAND_OK) << PQerrorMessage(clients.back().get());
    PQclear(prepared);
  }
  ASSERT_EQ(accepted_by(ports, 0), kClients);
  ASSERT_EQ(moved_to(ports, 1), 0);

  // Their load comes: worker 0 goes over the mark, and sessions move between transactions.
  std::atomic<bool> stop{false};
  std::vector<std::string> errors(kClients);
  std::vector<std::thread> loads;
  for (int i = 0; i < kClients; ++i) {
    loads.emplace_back([&, i] {
      for (int n = 0; !stop && errors[i].empty(); ++n) errors[i] = run_s1(clients[i].get(), n);
    });
  }
  const bool any_moved =
      wait_until([&] { return moved_to(ports, 1) >= 1; }, seconds(20), milliseconds(100));
  // A moment more of load on the new worker, then every client is checked.
  std::this_thread::sleep_for(milliseconds(500));
  // Worker 0 is still busy with those left: none moved back (read before the load stops, when
  // the samples may for a moment see worker 0 idle and worker 1 not).
  const double moved_back = moved_to(ports, 0);
  stop = true;
  for (auto& load : loads) load.join();
  ASSERT_TRUE(any_moved)
      << "worker 0 busy: "
      << metric(ports.admin, "pgvigil_worker_busy_ratio", {{"worker", "0"}}).value_or(-1);
  for (int i = 0; i < kClients; ++i) {
    EXPECT_EQ(errors[i], "") << "client " << i;
    EXPECT_EQ(run_s1(clients[i].get(), 41), "") << "client " << i;
    EXPECT_EQ(application_name(clients[i].get()), "client" + std::to_string(i));
  }
  EXPECT_EQ(moved_back, 0);

  // A cancel finds each session where it runs now: its query ends with 57014 at once.
  for (int i = 0; i < kClients; ++i) {
    PGconn* client = clients[i].get();
    ASSERT_EQ(PQsendQuery(client, "SELECT pg_sleep(30)"), 1) << PQerrorMessage(client);
    // The query must have reached the server, or the cancel has nothing to cancel yet.
    ASSERT_TRUE(wait_until(
        [&] {
          return pg->query_value(
                     "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                     "AND query = 'SELECT pg_sleep(30)'") == "1";
        },
        seconds(5)));
    PGcancel* cancel = PQgetCancel(client);
    char error[256];
    EXPECT_EQ(PQcancel(cancel, error, sizeof error), 1) << error;
    PQfreeCancel(cancel);
    std::string sqlstate;
    while (PGresult* result = PQgetResult(client)) {
      if (const char* state = PQresultErrorField(result, PG_DIAG_SQLSTATE)) sqlstate = state;
      PQclear(result);
    }
    EXPECT_EQ(sqlstate, "57014") << "client " << i;
  }

  // The drain (SIGTERM) reaches every session where it runs now: each idle client is told
  // 57P01, and pgvigil exits cleanly at once, not after shutdown_timeout.
  ASSERT_TRUE(daemon->send_signal(SIGTERM));
  const auto code = daemon->wait_exit(seconds(10));
  ASSERT_TRUE(code.has_value()) << daemon->log_text();
  EXPECT_EQ(*code, 0) << daemon->log_text();
  for (int i = 0; i < kClients; ++i) {
    PGresult* result = PQexec(clients[i].get(), "SELECT 1");
    EXPECT_NE(PQresultStatus(result), PGRES_TUPLES_OK) << "client " << i;
    PQclear(result);
  }
}

}  // namespace
}  // namespace pgvigil::testing
