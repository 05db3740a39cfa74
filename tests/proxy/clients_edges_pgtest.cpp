// Real clients through the real pgvigil binary at the edges: pooled connections that die,
// clients that die inside a transaction, the limits (client connections, relay buffers, startup
// and checkout timeouts, a request that came with its FIN) and pool.shards. The everyday client
// paths are in clients_pgtest.cpp; both share the fixture of proxy_pg_fixture.hpp.

#include <arpa/inet.h>
#include <signal.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/metrics/http_client.hpp"
#include "tests/proxy/pq_client.hpp"
#include "tests/proxy/proxy_pg_fixture.hpp"
#include "tests/proxy/raw_pg_connection.hpp"
#include "tests/support/admin_metrics.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/free_port.hpp"
#include "tests/support/pg_cluster.hpp"
#include "tests/support/prometheus_text.hpp"
#include "tests/support/subprocess.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/wait_until.hpp"

namespace pgvigil::testing {
namespace {

class ClientsPgTest : public ProxyPgFixture {};

// --- dead pooled connections ---------------------------------------------------------------

TEST_F(ClientsPgTest, TerminatedIdleBackendsAreNeverHandedOut) {
  pg_->execute("DROP TABLE IF EXISTS survivors; CREATE TABLE survivors (id int)");
  start_daemon({.databases = {{.name = "tx", .pool = "{min_idle: 2, max_size: 4}"},
                              {.name = "sess", .pool_mode = "session", .pool = "{min_idle: 2}"}}});
  auto early = pq_connect(conninfo("tx"));  // connected before the kill, holds no server
  ASSERT_TRUE(pq_ok(early)) << PQerrorMessage(early.get());
  ASSERT_EQ(pq_value(early, "SELECT 'warm'"), "warm");
  ASSERT_TRUE(wait_until([&] { return daemon_backends().size() >= 4; }, seconds(10)));

  for (int round = 0; round < 2; ++round) {
    for (const pid_t pid : daemon_backends()) EXPECT_TRUE(pg_->terminate_backend(pid)) << pid;
    std::vector<PgConn> clients;
    clients.push_back(pq_connect(conninfo("sess")));
    clients.push_back(pq_connect(conninfo("tx")));
    for (int i = 0; i < 3; ++i) {
      const auto& conn = i == 0 ? early : clients[i - 1];
      ASSERT_TRUE(pq_ok(conn)) << PQerrorMessage(conn.get());
      const std::string id = std::to_string(round * 10 + i);
      EXPECT_EQ(pq_run(conn, "BEGIN"), "") << "round " << round << " client " << i;
      EXPECT_EQ(pq_run(conn, "INSERT INTO survivors VALUES (" + id + ")"), "");
      EXPECT_EQ(pq_value(conn, "SELECT count(*) FROM survivors WHERE id = " + id), "1");
      EXPECT_EQ(pq_run(conn, "COMMIT"), "");
    }
  }
  EXPECT_EQ(pg_->query_value("SELECT count(*) FROM survivors"), "6");
  // The last round's dead connections are evicted when pgvigil notices them, not necessarily
  // before the clients are done.
  EXPECT_TRUE(wait_until([&] { return metric("pgvigil_evictions_total", {}) >= 4; }, seconds(5)))
      << metrics_page();
  pg_->execute("DROP TABLE survivors");
}

// --- a client dying inside a transaction ---------------------------------------------------

TEST_F(ClientsPgTest, ClientKilledMidTransactionLeavesNothingBehind) {
  pg_->execute("DROP TABLE IF EXISTS dirty_rows; CREATE TABLE dirty_rows (x int)");
  start_daemon({.databases = {{.name = "tx", .pool = "{max_size: 1, min_idle: 1}"}}});
  const Labels dirty{{"pool", "tx"}, {"reason", "dirty_return"}};
  const double dirty_before = metric("pgvigil_evictions_total", dirty);

  auto dying = pq_connect(conninfo("tx"));
  ASSERT_TRUE(pq_ok(dying)) << PQerrorMessage(dying.get());
  ASSERT_EQ(pq_run(dying, "BEGIN"), "");
  ASSERT_EQ(pq_value(dying, "SELECT pg_advisory_lock(42)"), "");
  ASSERT_EQ(pq_run(dying, "CREATE TEMP TABLE dying_tmp (x int)"), "");
  ASSERT_EQ(pq_run(dying, "INSERT INTO dirty_rows VALUES (1)"), "");
  const auto dying_backend = pq_value(dying, "SELECT pg_backend_pid()").value_or("0");
  ASSERT_EQ(pg_->query_value("SELECT state FROM pg_stat_activity WHERE pid = " + dying_backend),
            "idle in transaction");

  // The client's socket goes away without a Terminate message.
  ASSERT_EQ(::shutdown(PQsocket(dying.get()), SHUT_RDWR), 0);
  EXPECT_TRUE(wait_until(
      [&] { return metric("pgvigil_evictions_total", dirty) >= dirty_before + 1; }, seconds(5)))
      << metric("pgvigil_evictions_total", dirty);
  EXPECT_TRUE(wait_until(
      [&] {
        return pg_->query_value("SELECT count(*) FROM pg_stat_activity WHERE pid = " +
                                dying_backend) == "0";
      },
      seconds(5)))
      << "the dirty backend still exists";
  EXPECT_EQ(pg_->query_value("SELECT count(*) FROM pg_stat_activity WHERE application_name = '" +
                             app_name_ + "' AND state LIKE 'idle in transaction%'"),
            "0");
  EXPECT_EQ(pg_->query_value("SELECT count(*) FROM dirty_rows"), "0");

  auto next = pq_connect(conninfo("tx"));
  ASSERT_TRUE(pq_ok(next)) << PQerrorMessage(next.get());
  EXPECT_EQ(PQtransactionStatus(next.get()), PQTRANS_IDLE);
  EXPECT_NE(pq_value(next, "SELECT pg_backend_pid()"), dying_backend);
  EXPECT_EQ(pq_value(next, "SELECT pg_try_advisory_lock(42)"), "t");
  EXPECT_EQ(pq_value(next, "SELECT pg_advisory_unlock(42)"), "t");
  EXPECT_EQ(pq_value(next, "SELECT to_regclass('dying_tmp') IS NULL"), "t");
  EXPECT_EQ(pq_value(next, "SELECT count(*) FROM dirty_rows"), "0");
  EXPECT_EQ(pq_value(next, "SELECT now() = statement_timestamp()"), "t")
      << "the statement ran inside someone else's transaction";
  EXPECT_TRUE(wait_until(
      [&] { return metric("pgvigil_client_connections", {{"pool", "tx"}}) == 1; }, seconds(2)));
  pg_->execute("DROP TABLE dirty_rows");
}

TEST_F(ClientsPgTest, PsqlKilledInsideATransactionIsEvictedDirty) {
  pg_->execute("DROP TABLE IF EXISTS psql_dirty; CREATE TABLE psql_dirty (x int)");
  start_daemon({.databases = {{.name = "tx", .pool = "{max_size: 1, min_idle: 1}"}}});
  const Labels dirty{{"pool", "tx"}, {"reason", "dirty_return"}};
  const double dirty_before = metric("pgvigil_evictions_total", dirty);
  write_file(work_->path() / "inside.sql", "BEGIN;\nINSERT INTO psql_dirty VALUES (7);\n");
  // psql keeps reading its script from the pipe, so it stays connected inside the transaction.
  const pid_t psql_pid = spawn_process(
      {"/bin/sh", "-c", "(cat inside.sql; sleep 60) | PGAPPNAME=dying-psql " + psql("tx")},
      work_->path() / "psql.log", work_->path());
  // pgvigil applies psql's application_name to the server connection it runs on.
  const std::string in_transaction =
      "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'dying-psql' AND "
      "state = 'idle in transaction'";
  const bool inside = wait_until([&] { return pg_->query_value(in_transaction) == "1"; }, seconds(5));
  ::kill(-psql_pid, SIGKILL);  // the whole pipeline: psql dies without a goodbye
  EXPECT_TRUE(wait_until([&] { return try_reap(psql_pid).has_value(); }, seconds(5)));
  ASSERT_TRUE(inside) << read_file(work_->path() / "psql.log");

  EXPECT_TRUE(wait_until(
      [&] { return metric("pgvigil_evictions_total", dirty) >= dirty_before + 1; }, seconds(5)));
  EXPECT_TRUE(wait_until([&] { return pg_->query_value(in_transaction) == "0"; }, seconds(5)));
  EXPECT_EQ(pg_->query_value("SELECT count(*) FROM psql_dirty"), "0");
  const auto ran = run_shell(psql("tx") + " -c 'SELECT count(*) FROM psql_dirty' 2>&1");
  EXPECT_EQ(ran.exit_code, 0) << ran.output;
  EXPECT_EQ(ran.output, "0\n");
  pg_->execute("DROP TABLE psql_dirty");
}

// --- limits -------------------------------------------------------------------------------

TEST_F(ClientsPgTest, ClientConnectionLimitRefusesTheFourth) {
  start_daemon({.databases = {{.name = "tx"}}, .listen_extra = "max_client_connections: 3"});
  std::vector<PgConn> admitted;
  for (int i = 0; i < 3; ++i) {
    admitted.push_back(pq_connect(conninfo("tx")));
    ASSERT_TRUE(pq_ok(admitted.back())) << PQerrorMessage(admitted.back().get());
  }
  EXPECT_EQ(metric("pgvigil_client_connections", {{"pool", "tx"}}), 3);
  auto fourth = pq_connect(conninfo("tx"));
  EXPECT_FALSE(pq_ok(fourth));
  EXPECT_TRUE(contains(PQerrorMessage(fourth.get()), "too many client connections"))
      << PQerrorMessage(fourth.get());
  // pgvigil counts the refusal after closing the socket, so the client may hear it first.
  EXPECT_TRUE(wait_until(
      [&] {
        return metric("pgvigil_client_startup_errors_total", {{"class", "53"}}) == 1;
      },
      seconds(5)))
      << metrics_page();
  // The admitted ones are unaffected; a slot freed is a slot taken.
  EXPECT_EQ(pq_value(admitted[0], "SELECT 'fine'"), "fine");
  admitted.pop_back();
  EXPECT_TRUE(wait_until([&] { return pq_ok(pq_connect(conninfo("tx"))); }, seconds(3)));
}

// A refusal after the login (here: session pooling finds no server connection free) comes after
// AuthenticationOk, as PostgreSQL orders its own: libpq takes an error before it as a failed
// login and tries again (without TLS under sslmode=prefer, or at the next host), doubling the
// load or the wait the refusal was about.
TEST_F(ClientsPgTest, ARefusalAfterTheLoginComesAfterAuthenticationOk) {
  start_daemon({.databases = {{.name = "sess",
                               .pool_mode = "session",
                               .pool = "{max_size: 1, min_idle: 1, checkout_timeout: 1s}"}}});
  auto holder = pq_connect(conninfo("sess"));  // takes the only server connection
  ASSERT_TRUE(pq_ok(holder)) << PQerrorMessage(holder.get());
  RawPgConnection raw(port_);
  ASSERT_TRUE(raw.send(startup_packet({{"user", "postgres"}, {"database", "sess"}})));
  BackendMessage message;
  ASSERT_EQ(raw.read_message(message, seconds(10)), RawPgConnection::ReadEnd::message);
  EXPECT_EQ(message.type, 'R');
  EXPECT_EQ(message.payload, std::string(4, '\0'));  // AuthenticationOk
  ASSERT_EQ(raw.read_message(message, seconds(10)), RawPgConnection::ReadEnd::message);
  ASSERT_EQ(message.type, 'E');
  const auto fields = error_fields(message.payload);
  EXPECT_EQ(fields.at('S'), "FATAL") << message.payload;
  EXPECT_TRUE(raw.closed_by_server_within(seconds(5)));
}

// The daemon's resident memory, in KiB.
std::int64_t resident_kib(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
}

TEST_F(ClientsPgTest, QuietClientsGiveTheirRelayBuffersBack) {
  // After a transaction a session keeps its 32 KiB client buffer for a moment (the next query
  // usually follows at once); the worker's linger sweep takes it back after 10-20 ms of quiet.
  // Clients that each ran a query and then went quiet must therefore cost far less than a
  // buffer each. They are opened one after another, so only a few linger at any moment, and
  // the cost is measured over a second batch, after the worker's spare buffers are in place.
  start_daemon({.databases = {{.name = "tx"}}});
  constexpr int kBatch = 300;
  std::vector<PgConn> clients;
  const auto open_batch = [&] {
    for (int i = 0; i < kBatch; ++i) {
      clients.push_back(pq_connect(conninfo("tx")));
      ASSERT_TRUE(pq_ok(clients.back())) << PQerrorMessage(clients.back().get());
      ASSERT_EQ(pq_value(clients.back(), "SELECT 1"), "1");
    }
  };
  open_batch();
  // Only the last few clients of the batch can still linger here; a buffer they give back
  // stays in the worker's spare buffers, so it is counted in this figure either way.
  const auto first = resident_kib(daemon_->pid());
  ASSERT_GT(first, 0);
  open_batch();
  // The sweep takes the second batch's buffers back within a few sweep periods; a buffer kept
  // by every quiet client never comes back, and the deadline says so.
  std::int64_t per_client = 0;
  wait_until(
      [&] {
        per_client = (resident_kib(daemon_->pid()) - first) * 1024 / kBatch;
        return per_client < 8 * 1024;
      },
      seconds(5));
  std::printf("quiet clients after one query each: %lld bytes of pgvigil memory per client\n",
              static_cast<long long>(per_client));
  EXPECT_LT(per_client, 8 * 1024) << "quiet clients seem to keep their 32 KiB relay buffers";
  // Parked clients are served again as soon as they speak.
  for (auto& client : clients) ASSERT_EQ(pq_value(client, "SELECT 2"), "2");
}

TEST_F(ClientsPgTest, SilentClientIsDroppedAfterStartupTimeout) {
  start_daemon({.databases = {{.name = "tx"}}, .listen_extra = "startup_timeout: 500ms"});
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port_);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval limit{3, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  const auto connected = Clock::now();
  // Whatever pgvigil says on the way out (if anything), the connection must end: read to EOF.
  char bytes[256];
  ssize_t got = 0;
  do {
    got = ::recv(fd, bytes, sizeof bytes, 0);
  } while (got > 0);
  const long waited = elapsed_ms(connected);
  const int recv_errno = errno;
  ::close(fd);
  EXPECT_TRUE(got == 0 || recv_errno == ECONNRESET)
      << "the connection was not closed: recv " << got << ", errno " << recv_errno;
  EXPECT_GE(waited, 400);
  EXPECT_LE(waited, 1500);  // 500 ms plus slack for a loaded machine
  // A client that talks is not affected.
  auto conn = pq_connect(conninfo("tx"));
  ASSERT_TRUE(pq_ok(conn)) << PQerrorMessage(conn.get());
  std::this_thread::sleep_for(milliseconds(700));  // longer than startup_timeout, on purpose
  EXPECT_EQ(pq_value(conn, "SELECT 'alive'"), "alive");
}

TEST_F(ClientsPgTest, CheckoutTimesOutWhenThePoolIsBusyAndTheClientMayRetry) {
  start_daemon({.databases = {{.name = "tx",
                               .pool = "{max_size: 1, min_idle: 1, checkout_timeout: 300ms}"}}});
  auto holder = pq_connect(conninfo("tx"));
  ASSERT_TRUE(pq_ok(holder)) << PQerrorMessage(holder.get());
  ASSERT_EQ(pq_run(holder, "BEGIN"), "");
  ASSERT_EQ(pq_value(holder, "SELECT 'holding'"), "holding");

  auto waiter = pq_connect(conninfo("tx"));
  ASSERT_TRUE(pq_ok(waiter)) << PQerrorMessage(waiter.get());
  const auto asked = Clock::now();
  const auto result = pq_first_result(waiter, PQsendQuery(waiter.get(), "SELECT 1") == 1);
  const long waited = elapsed_ms(asked);
  EXPECT_EQ(PQresultStatus(result.get()), PGRES_FATAL_ERROR);
  EXPECT_EQ(result_sqlstate(result), "53300") << PQerrorMessage(waiter.get());
  EXPECT_TRUE(contains(PQerrorMessage(waiter.get()), "became free within 300 ms"))
      << PQerrorMessage(waiter.get());
  EXPECT_GE(waited, 250);
  EXPECT_LE(waited, 2000);
  // A refusal the client can recover from: ErrorResponse and ReadyForQuery, not a FATAL. The
  // same with the extended protocol (Parse, Bind, Describe, Execute, Sync).
  EXPECT_EQ(PQstatus(waiter.get()), CONNECTION_OK);
  const char* const values[] = {"7"};
  const auto extended = pq_first_result(
      waiter, PQsendQueryParams(waiter.get(), "SELECT $1::int", 1, nullptr, values, nullptr,
                                nullptr, 0) == 1);
  EXPECT_EQ(result_sqlstate(extended), "53300") << PQerrorMessage(waiter.get());
  EXPECT_EQ(PQstatus(waiter.get()), CONNECTION_OK);
  EXPECT_EQ(metric("pgvigil_client_errors_total", {{"pool", "tx"}, {"class", "53"}}), 2);

  // The holder's transaction is unharmed, and once it ends the pool serves again: the refused
  // client in the same session, and a new one.
  EXPECT_EQ(pq_value(holder, "SELECT 'still mine'"), "still mine");
  EXPECT_EQ(pq_run(holder, "COMMIT"), "");
  EXPECT_EQ(pq_value(waiter, "SELECT 'retried'"), "retried");
  const auto retried = pq_first_result(
      waiter, PQsendQueryParams(waiter.get(), "SELECT $1::int", 1, nullptr, values, nullptr,
                                nullptr, 0) == 1);
  ASSERT_TRUE(result_ok(retried)) << PQerrorMessage(waiter.get());
  EXPECT_STREQ(PQgetvalue(retried.get(), 0, 0), "7");
  auto later = pq_connect(conninfo("tx"));
  ASSERT_TRUE(pq_ok(later)) << PQerrorMessage(later.get());
  EXPECT_EQ(pq_value(later, "SELECT 'served'"), "served");
}

TEST_F(ClientsPgTest, ARequestThatCameWithTheClientsFinIsNoticedInEveryPoolingMode) {
  // The relay's next client read waits without trying the socket after a complete request
  // (stream/detail/turn_read_op.hpp), so a FIN that arrived together with the request raises no
  // event of its own. Each case must still end the session, and leave no server connection
  // leased.
  start_daemon({.databases = {{.name = "tx"}, {.name = "sess", .pool_mode = "session"}}});
  struct Case {
    std::string database;
    std::string sql;
  };
  for (const auto& [database, sql] : {Case{"tx", "SELECT 1"}, Case{"tx", "BEGIN"},
                                      Case{"sess", "SELECT 1"}, Case{"sess", "BEGIN"}}) {
    SCOPED_TRACE(database + ": " + sql);
    RawPgConnection client(port_);
    std::string failure;
    ASSERT_TRUE(client.login("postgres", database, seconds(5), &failure)) << failure;
    ASSERT_TRUE(client.send_then_finish(typed_message('Q', sql + std::string(1, '\0'))));
    const auto ready = client.read_until('Z', seconds(5));
    ASSERT_TRUE(ready) << "no answer";
    EXPECT_TRUE(client.closed_by_server_within(seconds(2)))
        << "the session outlived its client's FIN";
  }
  for (const std::string pool : {"tx", "sess"}) {
    EXPECT_TRUE(wait_until([&] { return metric("pgvigil_server_connections",
                                               {{"pool", pool}, {"state", "checked_out"}}) == 0; },
                           seconds(3)))
        << pool << "\n" << metrics_page();
  }
}

// --- pool.shards ---------------------------------------------------------------------------

TEST_F(ClientsPgTest, ShardsGiveTheirIdlePlacesToAShardWithAWaitingClient) {
  // Two shards of one connection each, on the daemon's two workers.
  start_daemon({.databases = {{.name = "tx",
                               .pool = "{max_size: 2, min_idle: 2, shards: 2, "
                                       "checkout_timeout: 2s}"}}});
  const auto connections = [&](const char* state) {
    return metric("pgvigil_server_connections", {{"pool", "tx"}, {"state", state}});
  };
  const auto rebalanced = [&] {
    return metric("pgvigil_evictions_total", {{"pool", "tx"}, {"reason", "rebalanced"}});
  };
  ASSERT_TRUE(wait_until([&] { return connections("idle") == 2; }, seconds(10))) << metrics_page();
  EXPECT_EQ(daemon_backends().size(), 2u);
  const auto ready = test::http_get(kHost, admin_port_, "/readyz", seconds(2)).body;
  EXPECT_TRUE(contains(ready, "pool tx (shard 1/2): 1 healthy")) << ready;
  EXPECT_TRUE(contains(ready, "pool tx (shard 2/2): 1 healthy")) << ready;

  // The Unix socket deals its clients to the workers in turn: the first and third share a
  // worker, so a shard, whose one connection the first holds.
  const auto unix_conninfo = "host=" + socket_dir().string() + " port=" + std::to_string(port_) +
                             " dbname=tx user=postgres";
  auto first = pq_connect(unix_conninfo);
  auto second = pq_connect(unix_conninfo);
  auto third = pq_connect(unix_conninfo);
  for (const auto* client : {&first, &second, &third}) {
    ASSERT_TRUE(pq_ok(*client)) << PQerrorMessage(client->get());
  }
  ASSERT_EQ(pq_run(first, "BEGIN"), "");
  const auto first_pid = pq_value(first, "SELECT pg_backend_pid()");
  ASSERT_TRUE(first_pid);

  // The third waits on its shard, whose connection is busy, while the other shard's sits
  // idle: that one gives up its place, and the third's shard opens a connection in it.
  ASSERT_EQ(pq_run(third, "BEGIN"), "") << PQerrorMessage(third.get());
  const auto third_pid = pq_value(third, "SELECT pg_backend_pid()");
  ASSERT_TRUE(third_pid);
  EXPECT_NE(*third_pid, *first_pid);
  EXPECT_EQ(rebalanced(), 1.0) << metrics_page();
  // The closed backend goes; the database never holds more than max_size.
  EXPECT_TRUE(wait_until([&] { return daemon_backends().size() == 2u; }, seconds(5)));

  // Both places are in transactions now, both on the first's shard, which holds more than its
  // share: the second's shard is owed the next place that frees, and opens a connection there.
  // Whether it asks before or after the first's COMMIT, that connection's place is its.
  const bool sent = PQsendQuery(second.get(), "SELECT pg_backend_pid()") == 1;
  ASSERT_EQ(pq_run(first, "COMMIT"), "");
  const auto answer = pq_first_result(second, sent);
  ASSERT_TRUE(result_ok(answer)) << PQerrorMessage(second.get());
  const std::string second_pid = PQgetvalue(answer.get(), 0, 0);
  EXPECT_NE(second_pid, *first_pid);
  EXPECT_NE(second_pid, *third_pid);
  EXPECT_EQ(rebalanced(), 2.0) << metrics_page();
  ASSERT_EQ(pq_run(third, "COMMIT"), "");
  EXPECT_TRUE(wait_until([&] { return daemon_backends().size() == 2u; }, seconds(5)));
  // Every client keeps working, on one place per shard again.
  for (const auto* client : {&first, &second, &third}) {
    EXPECT_EQ(pq_value(*client, "SELECT 42"), "42");
  }
}

TEST_F(ClientsPgTest, ShardedPoolRunsPgbenchWithoutErrors) {
  ensure_bench_database();
  start_daemon({.databases = {{.name = "bench_tx", .dbname = "bench",
                               .pool = "{max_size: 4, min_idle: 4, shards: 2}"}}});
  // Both shards count into the database's series.
  expect_pgbench_runs_and_is_counted("bench_tx", "-S -T 3 -c 8 -j 2 -M extended");
  EXPECT_LE(daemon_backends().size(), 4u);
  // Every connection is back, or on its way back; both states from one page, so that a
  // connection moving between the two reads is not counted twice or missed.
  std::string page;
  EXPECT_TRUE(wait_until(
      [&] {
        page = metrics_page();
        const Labels idle{{"pool", "bench_tx"}, {"state", "idle"}};
        const Labels checked_out{{"pool", "bench_tx"}, {"state", "checked_out"}};
        return sample_value(page, "pgvigil_server_connections", idle).value_or(0) +
                   sample_value(page, "pgvigil_server_connections", checked_out).value_or(0) ==
               4;
      },
      seconds(5)))
      << page;
}

}  // namespace
}  // namespace pgvigil::testing
