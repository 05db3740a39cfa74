// Real clients through the real pgvigil binary at its limits: client connections, a refusal
// after the login, relay buffers of quiet clients, the startup timeout and defer_accept, the
// checkout timeout, and a request that came with its FIN. Pooled connections that die and
// pool.shards are in clients_edges_pgtest.cpp; all share the fixture of proxy_pg_fixture.hpp.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/proxy/pq_client.hpp"
#include "tests/proxy/proxy_pg_fixture.hpp"
#include "tests/proxy/raw_pg_connection.hpp"
#include "tests/support/admin_metrics.hpp"
#include "tests/support/prometheus_text.hpp"
#include "tests/support/wait_until.hpp"

namespace pgvigil::testing {
namespace {

class ClientsPgTest : public ProxyPgFixture {};

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
  // The refusal ends in an orderly close, not a reset: pgvigil reads the startup packet that came
  // with the connection (listen.defer_accept) before closing.
  RawPgConnection fifth(port_);
  std::string refusal;
  EXPECT_FALSE(fifth.login("postgres", "tx", seconds(5), &refusal));
  EXPECT_TRUE(contains(refusal, "53300")) << refusal;
  EXPECT_TRUE(fifth.closed_by_server_within(seconds(5)));
  EXPECT_FALSE(fifth.was_reset());
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
  // Accepted at once (defer_accept 0), as the kernel hands over a silent client in the end.
  start_daemon(
      {.databases = {{.name = "tx"}}, .listen_extra = "startup_timeout: 500ms, defer_accept: 0"});
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

TEST_F(ClientsPgTest, ASilentTcpClientWaitsWithTheKernelUntilItSpeaks) {
  // The shipped defer_accept (10s): pgvigil takes a TCP client once its first bytes are in, so
  // a client that says nothing for longer than startup_timeout is not dropped for it.
  start_daemon({.databases = {{.name = "tx"}}, .listen_extra = "startup_timeout: 500ms"});
  RawPgConnection client(port_);
  // Silence for three startup_timeouts: accepted at once, the client would be closed by now.
  std::this_thread::sleep_for(milliseconds(1500));
  std::string failure;
  EXPECT_TRUE(client.login("postgres", "tx", seconds(5), &failure)) << failure;
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
  const auto extended =
      pq_first_result(waiter, PQsendQueryParams(waiter.get(), "SELECT $1::int", 1, nullptr, values,
                                                nullptr, nullptr, 0) == 1);
  EXPECT_EQ(result_sqlstate(extended), "53300") << PQerrorMessage(waiter.get());
  EXPECT_EQ(PQstatus(waiter.get()), CONNECTION_OK);
  EXPECT_EQ(metric("pgvigil_client_errors_total", {{"pool", "tx"}, {"class", "53"}}), 2);

  // The holder's transaction is unharmed, and once it ends the pool serves again: the refused
  // client in the same session, and a new one.
  EXPECT_EQ(pq_value(holder, "SELECT 'still mine'"), "still mine");
  EXPECT_EQ(pq_run(holder, "COMMIT"), "");
  EXPECT_EQ(pq_value(waiter, "SELECT 'retried'"), "retried");
  const auto retried =
      pq_first_result(waiter, PQsendQueryParams(waiter.get(), "SELECT $1::int", 1, nullptr, values,
                                                nullptr, nullptr, 0) == 1);
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
    EXPECT_TRUE(wait_until(
        [&] {
          return metric("pgvigil_server_connections", {{"pool", pool}, {"state", "checked_out"}}) ==
                 0;
        },
        seconds(3)))
        << pool << "\n"
        << metrics_page();
  }
}

}  // namespace
}  // namespace pgvigil::testing
