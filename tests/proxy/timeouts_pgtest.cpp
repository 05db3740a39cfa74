// Every wait a client can put pgvigil in is bounded, through the real pgvigil binary to a real
// PostgreSQL: a client that begins a request and stops (pool.client_request_timeout), one idle in
// a transaction (pool.idle_transaction_timeout) or outside one (pool.client_idle_timeout), a
// query that runs too long (pool.query_timeout).

#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <signal.h>
#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tests/proxy/pq_client.hpp"
#include "tests/proxy/proxy_pg_fixture.hpp"
#include "tests/proxy/raw_pg_connection.hpp"
#include "tests/support/wait_until.hpp"

namespace pgvigil::testing {
namespace {

class TimeoutsPgTest : public ProxyPgFixture {
 protected:
  void expect_idle_transaction_closed_at_the_bound(const char* pool_mode);
  void expect_idle_client_closed_at_the_bound(const char* pool_mode);
  double connections(const char* state) const {
    return metric("pgvigil_server_connections", {{"pool", "tx"}, {"state", state}});
  }
};

// A Query of 108 bytes, cut after its header and `sent_of_body` bytes of its text.
std::string half_a_query(std::size_t sent_of_body) {
  const std::string whole = typed_message('Q', std::string(95, ' ') + "SELECT 1" + '\0');
  return whole.substr(0, 5 + sent_of_body);
}

// Parse, Bind and Execute without their Sync: the server would answer nothing until it comes.
std::string extended_without_sync() {
  using namespace std::string_literals;
  return typed_message('P', "\0SELECT 1\0\0\0"s) + typed_message('B', "\0\0\0\0\0\0\0\0"s) +
         typed_message('E', "\0\0\0\0\0"s);
}

// 50 clients on a pool of two each begin a request and stop. Two of them hold the pool's
// connections: they sent Parse, Bind, Execute and a Flush (which the server answers) without the
// Sync. The other 48 sent half a Query, Parse, Bind and Execute with neither Sync nor Flush, or a
// whole Query and half the next: pgvigil waits for a whole request before it takes a server
// connection, and gives it back once the whole ones are answered, so they hold none. A well-behaved client still gets a connection within
// client_request_timeout + 1 s; every stalled client gets FATAL 08P01 and is closed; the pool
// ends with its connections idle and clean.
TEST_F(TimeoutsPgTest, ClientsThatStopMidRequestHoldNoServerConnectionForLong) {
  start_daemon({.databases = {{.name = "tx",
                               .pool = "{max_size: 2, min_idle: 2, checkout_timeout: 10s, "
                                       "client_request_timeout: 1s}"}}});
  ASSERT_TRUE(wait_until([&] { return connections("idle") == 2; }, seconds(10))) << metrics_page();
  std::vector<std::unique_ptr<RawPgConnection>> stalled;
  const auto stall = [&](const std::string& bytes) {
    stalled.push_back(std::make_unique<RawPgConnection>(port_));
    std::string failure;
    ASSERT_TRUE(stalled.back()->login("postgres", "tx", seconds(5), &failure)) << failure;
    ASSERT_TRUE(stalled.back()->send(bytes));
  };
  stall(extended_without_sync() + typed_message('H', ""));
  stall(extended_without_sync() + typed_message('H', ""));
  ASSERT_TRUE(wait_until([&] { return connections("checked_out") == 2; }, seconds(5)))
      << metrics_page();
  const std::string whole_and_half = typed_message('Q', std::string("SELECT 1") + '\0') + half_a_query(8);
  for (int i = 0; i < 48; ++i) {
    stall(i % 3 == 0 ? half_a_query(8) : i % 3 == 1 ? extended_without_sync() : whole_and_half);
  }

  auto good = pq_connect(conninfo("tx"));
  ASSERT_TRUE(pq_ok(good)) << PQerrorMessage(good.get());
  const auto asked = Clock::now();
  EXPECT_EQ(pq_value(good, "SELECT 'served'"), "served") << PQerrorMessage(good.get());
  EXPECT_LE(elapsed_ms(asked), 2000) << "client_request_timeout 1 s + 1 s";

  for (std::size_t i = 0; i < stalled.size(); ++i) {
    const auto error = stalled[i]->read_until('E', seconds(10));
    ASSERT_TRUE(error) << "stalled client " << i;
    const auto fields = error_fields(error->payload);
    EXPECT_EQ(fields.at('S'), "FATAL") << i;
    EXPECT_EQ(fields.at('C'), "08P01") << i;
    EXPECT_TRUE(contains(fields.at('M'), "part of a request")) << fields.at('M');
    EXPECT_TRUE(stalled[i]->closed_by_server_within(seconds(5))) << i;
  }
  // The two connections held mid-request were evicted (their state is unknown) and replaced.
  EXPECT_TRUE(wait_until(
      [&] {
        return metric("pgvigil_evictions_total", {{"pool", "tx"}, {"reason", "dirty_return"}}) ==
                   2 &&
               connections("idle") == 2 && connections("checked_out") == 0;
      },
      seconds(10)))
      << metrics_page();
  auto next = pq_connect(conninfo("tx"));
  ASSERT_TRUE(pq_ok(next));
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(pq_value(next, "SELECT count(*) FROM pg_prepared_statements"), "0") << i;
    EXPECT_EQ(pq_value(next, "SELECT pg_current_xact_id_if_assigned() IS NULL"), "t") << i;
  }
}

// A client slow to send a large request, but never silent for the timeout, is not cut; nor is a
// client whose query runs longer than the timeout (it waits for the server, not the other way).
TEST_F(TimeoutsPgTest, ASlowButSteadyClientAndALongQueryAreLeftAlone) {
  start_daemon({.databases = {{.name = "tx",
                               .pool = "{max_size: 1, min_idle: 1, client_request_timeout: 1s}"}}});
  RawPgConnection slow(port_);
  std::string failure;
  ASSERT_TRUE(slow.login("postgres", "tx", seconds(5), &failure)) << failure;
  const std::string query =
      typed_message('Q', "SELECT length('" + std::string(2000, 'x') + "')" + '\0');
  // In 8 pieces, 400 ms apart: 2.8 s in all, never 1 s silent.
  const std::size_t piece = query.size() / 8 + 1;
  for (std::size_t at = 0; at < query.size(); at += piece) {
    ASSERT_TRUE(slow.send(query.substr(at, piece)));
    if (at + piece < query.size()) std::this_thread::sleep_for(milliseconds(400));
  }
  const auto row = slow.read_until('D', seconds(10));
  ASSERT_TRUE(row) << "the slow client was cut";
  EXPECT_TRUE(contains(row->payload, "2000"));
  ASSERT_TRUE(slow.read_until('Z', seconds(5)));

  auto sleeper = pq_connect(conninfo("tx"));
  ASSERT_TRUE(pq_ok(sleeper));
  EXPECT_EQ(pq_value(sleeper, "SELECT pg_sleep(2)::text || 'done'"), "done")
      << PQerrorMessage(sleeper.get());
}

// 0 turns the bound off: a client may take as long as it likes.
TEST_F(TimeoutsPgTest, AZeroClientRequestTimeoutNeverCuts) {
  start_daemon({.databases = {{.name = "tx",
                               .pool = "{max_size: 1, min_idle: 1, client_request_timeout: 0}"}}});
  RawPgConnection client(port_);
  std::string failure;
  ASSERT_TRUE(client.login("postgres", "tx", seconds(5), &failure)) << failure;
  const std::string whole = typed_message('Q', std::string("SELECT 'late'") + '\0');
  ASSERT_TRUE(client.send(whole.substr(0, 9)));
  BackendMessage message;
  // Nothing comes while the request is incomplete, however long.
  EXPECT_EQ(client.read_message(message, milliseconds(1500)), RawPgConnection::ReadEnd::timeout);
  ASSERT_TRUE(client.send(whole.substr(9)));
  const auto row = client.read_until('D', seconds(5));
  ASSERT_TRUE(row);
  EXPECT_TRUE(contains(row->payload, "late"));
}

// A client idle inside a transaction past pool.idle_transaction_timeout gets FATAL 25P03 at the
// bound (within 10 %); its transaction is gone and the next client of the same one-connection
// pool finds no transaction open.
void TimeoutsPgTest::expect_idle_transaction_closed_at_the_bound(const char* pool_mode) {
  start_daemon({.databases = {{.name = "tx",
                               .pool_mode = pool_mode,
                               .pool = "{max_size: 1, min_idle: 1, checkout_timeout: 10s, "
                                       "idle_transaction_timeout: 2s}"}}});
  pg_->execute("CREATE TABLE IF NOT EXISTS idle_tx (x int)");
  RawPgConnection idle(port_);
  std::string failure;
  ASSERT_TRUE(idle.login("postgres", "tx", seconds(5), &failure)) << failure;
  ASSERT_TRUE(
      idle.send(typed_message('Q', std::string("BEGIN; INSERT INTO idle_tx VALUES (1)") + '\0')));
  ASSERT_TRUE(idle.read_until('Z', seconds(5)));
  const auto idle_since = Clock::now();
  const auto error = idle.read_until('E', seconds(10));
  const long waited = elapsed_ms(idle_since);
  ASSERT_TRUE(error);
  const auto fields = error_fields(error->payload);
  EXPECT_EQ(fields.at('S'), "FATAL");
  EXPECT_EQ(fields.at('C'), "25P03");
  EXPECT_GE(waited, 1900);
  EXPECT_LE(waited, 2500);  // the bound, with room for a loaded machine
  EXPECT_TRUE(idle.closed_by_server_within(seconds(5)));

  auto next = pq_connect(conninfo("tx"));
  ASSERT_TRUE(pq_ok(next)) << PQerrorMessage(next.get());
  EXPECT_EQ(pq_value(next, "SELECT pg_current_xact_id_if_assigned() IS NULL"), "t");
  EXPECT_EQ(pq_value(next, "SELECT count(*) FROM idle_tx"), "0");
  EXPECT_TRUE(wait_until(
      [&] {
        return pg_->query_value("SELECT count(*) FROM pg_stat_activity WHERE state LIKE "
                                "'idle in transaction%' AND application_name = '" +
                                app_name_ + "'") == "0";
      },
      seconds(5)));
}

TEST_F(TimeoutsPgTest, AClientIdleInATransactionIsClosedAtTheBoundInTransactionPooling) {
  expect_idle_transaction_closed_at_the_bound("transaction");
}

TEST_F(TimeoutsPgTest, AClientIdleInATransactionIsClosedAtTheBoundInSessionPooling) {
  expect_idle_transaction_closed_at_the_bound("session");
}

// A client idle outside a transaction past pool.client_idle_timeout gets FATAL 57P05 at the
// bound (within 10 %); a client that speaks within the bound each time is never cut.
void TimeoutsPgTest::expect_idle_client_closed_at_the_bound(const char* pool_mode) {
  start_daemon({.databases = {{.name = "tx",
                               .pool_mode = pool_mode,
                               .pool = "{max_size: 2, min_idle: 1, client_idle_timeout: 2s}"}}});
  RawPgConnection idle(port_);
  std::string failure;
  ASSERT_TRUE(idle.login("postgres", "tx", seconds(5), &failure)) << failure;
  ASSERT_TRUE(idle.send(typed_message('Q', std::string("SELECT 1") + '\0')));
  ASSERT_TRUE(idle.read_until('Z', seconds(5)));
  const auto idle_since = Clock::now();

  // Beside it, a client that speaks every 500 ms for 3 s.
  auto steady = pq_connect(conninfo("tx"));
  ASSERT_TRUE(pq_ok(steady)) << PQerrorMessage(steady.get());
  std::vector<std::optional<std::string>> answers;
  std::thread speaker([&] {
    for (int i = 0; i < 6; ++i) {
      answers.push_back(pq_value(steady, "SELECT 'here'"));
      std::this_thread::sleep_for(milliseconds(500));
    }
  });
  const auto error = idle.read_until('E', seconds(10));
  const long waited = elapsed_ms(idle_since);
  speaker.join();
  for (const auto& answer : answers) EXPECT_EQ(answer, "here");
  ASSERT_TRUE(error);
  const auto fields = error_fields(error->payload);
  EXPECT_EQ(fields.at('S'), "FATAL");
  EXPECT_EQ(fields.at('C'), "57P05");
  EXPECT_GE(waited, 1900);
  EXPECT_LE(waited, 2500);  // the bound, with room for a loaded machine
  EXPECT_TRUE(idle.closed_by_server_within(seconds(5)));
  EXPECT_EQ(pq_value(steady, "SELECT 'still here'"), "still here");
}

TEST_F(TimeoutsPgTest, AnIdleClientIsClosedAtTheBoundInTransactionPooling) {
  expect_idle_client_closed_at_the_bound("transaction");
}

TEST_F(TimeoutsPgTest, AnIdleClientIsClosedAtTheBoundInSessionPooling) {
  expect_idle_client_closed_at_the_bound("session");
}

// A query past pool.query_timeout is cancelled on the server at the bound: the client gets the
// server's 57014 and its session goes on.
TEST_F(TimeoutsPgTest, AQueryPastQueryTimeoutIsCancelledAndTheSessionGoesOn) {
  start_daemon({.databases = {{.name = "tx", .pool = "{max_size: 1, min_idle: 1, "
                                                     "query_timeout: 2s}"}}});
  auto client = pq_connect(conninfo("tx"));
  ASSERT_TRUE(pq_ok(client)) << PQerrorMessage(client.get());
  const auto asked = Clock::now();
  const auto result = pq_first_result(client, PQsendQuery(client.get(), "SELECT pg_sleep(30)") == 1);
  const long waited = elapsed_ms(asked);
  EXPECT_EQ(PQresultStatus(result.get()), PGRES_FATAL_ERROR);
  EXPECT_EQ(result_sqlstate(result), "57014") << PQerrorMessage(client.get());
  EXPECT_GE(waited, 1900);
  EXPECT_LE(waited, 2500);  // the bound, plus a loaded machine's cancel round trip
  EXPECT_EQ(pq_value(client, "SELECT 'still here'"), "still here");
  // A query within the bound runs to its end.
  EXPECT_EQ(pq_value(client, "SELECT pg_sleep(1)::text || 'slept'"), "slept");
  EXPECT_EQ(metric("pgvigil_evictions_total", {{"pool", "tx"}, {"reason", "query_timeout"}}), 0);
}

// A frozen backend does not answer the cancel either: past query_timeout and then ping.timeout,
// the client gets 08006 and the connection is evicted (query_timeout).
TEST_F(TimeoutsPgTest, AFrozenBackendPastQueryTimeoutIsEvicted) {
  start_daemon({.databases = {{.name = "tx", .pool = "{max_size: 1, min_idle: 1, "
                                                     "query_timeout: 1s}"}}});
  auto client = pq_connect(conninfo("tx"));
  ASSERT_TRUE(pq_ok(client)) << PQerrorMessage(client.get());
  const auto backend = pq_value(client, "SELECT pg_backend_pid()");
  ASSERT_TRUE(backend);
  const pid_t pid = std::stoi(*backend);
  ASSERT_EQ(PQsendQuery(client.get(), "SELECT pg_sleep(30)"), 1);
  // The backend is asleep in its query; freeze it so that it cannot answer the cancel.
  std::this_thread::sleep_for(milliseconds(200));
  ASSERT_EQ(::kill(pid, SIGSTOP), 0);
  const auto frozen = Clock::now();
  const auto result = pq_first_result(client, true);
  const long waited = elapsed_ms(frozen);
  ::kill(pid, SIGCONT);
  EXPECT_NE(PQresultStatus(result.get()), PGRES_TUPLES_OK);
  EXPECT_TRUE(contains(PQerrorMessage(client.get()), "query_timeout"))
      << PQerrorMessage(client.get());
  // query_timeout 1 s (less the 200 ms before the freeze) + ping.timeout 1 s.
  EXPECT_LE(waited, 2500);
  EXPECT_TRUE(wait_until(
      [&] {
        return metric("pgvigil_evictions_total", {{"pool", "tx"}, {"reason", "query_timeout"}}) ==
               1;
      },
      seconds(5)))
      << metrics_page();
  auto next = pq_connect(conninfo("tx"));
  ASSERT_TRUE(pq_ok(next));
  EXPECT_EQ(pq_value(next, "SELECT 'served'"), "served");
}

}  // namespace
}  // namespace pgvigil::testing
