// The pool against a real PostgreSQL: warm-up, keep-alive read back from live sockets, and each
// kind of death found within its bound. Faults are real: terminated and frozen backends, a
// stopped server.

#include <libpq-fe.h>
#include <signal.h>

#include <boost/asio/post.hpp>
#include <future>

#include "probes/socket_options.hpp"
#include "tests/pool/pool_fixture.hpp"
#include "tests/support/wait_until.hpp"

namespace pgvigil::pool {
namespace {

using namespace std::chrono_literals;
using testing::wait_until;
using Stopwatch = std::chrono::steady_clock;

double seconds_since(Stopwatch::time_point start) {
  return std::chrono::duration<double>(Stopwatch::now() - start).count();
}

std::string run_query(const Lease& lease, const char* sql) {
  std::unique_ptr<PGresult, decltype(&PQclear)> result(PQexec(lease->native_handle(), sql),
                                                       &PQclear);
  if (PQresultStatus(result.get()) != PGRES_TUPLES_OK) {
    return std::string("error: ") + PQresultErrorMessage(result.get());
  }
  return PQgetvalue(result.get(), 0, 0);
}

Lease expect_lease(CheckoutResult result) {
  if (auto* error = std::get_if<CheckoutError>(&result)) {
    ADD_FAILURE() << "checkout failed: " << error->detail;
    return nullptr;
  }
  return std::get<Lease>(std::move(result));
}

class PoolPgTest : public PoolFixture {};

TEST_F(PoolPgTest, WarmsToMinIdleAndEverySocketCarriesTheConfiguredKeepalive) {
  const auto config = fast_config(*shared_server_);
  start_pool(config);
  ASSERT_TRUE(wait_until([&] { return backends(*shared_server_).size() == 2; }, 5s));
  ASSERT_TRUE(wait_until([&] { return pool_->status().idle == 2; }, 5s));
  // Idle, unless a ping has one of them probing at the moment of the read.
  EXPECT_TRUE(wait_until(
      [&] {
        return metric("pgvigil_server_connections", {{"pool", "app"}, {"state", "idle"}}) == 2;
      },
      5s));

  const auto first = expect_lease(checkout(1000ms));
  const auto second = expect_lease(checkout(1000ms));
  ASSERT_TRUE(first && second);
  for (const auto& lease : {first, second}) {
    const auto actual = probes::read_keepalive(lease->socket());
    ASSERT_TRUE(actual.has_value());
    EXPECT_EQ(actual->idle, config.keepalive.idle);
    EXPECT_EQ(actual->interval, config.keepalive.interval);
    EXPECT_EQ(actual->count, config.keepalive.count);
    EXPECT_EQ(actual->user_timeout, config.keepalive.user_timeout);
  }
  EXPECT_EQ(metric("pgvigil_keepalive_mismatches_total", {{"pool", "app"}}), 0);
  pool_->give_back(first, std::nullopt);
  pool_->give_back(second, std::nullopt);
}

TEST_F(PoolPgTest, CheckoutLendsAWorkingConnectionAndTakesItBack) {
  start_pool(fast_config(*shared_server_));
  const auto lease = expect_lease(checkout(2000ms));
  ASSERT_TRUE(lease);
  EXPECT_EQ(run_query(lease, "SELECT 41 + 1"), "42");
  EXPECT_EQ(pool_->status().checked_out, 1);
  pool_->give_back(lease, std::nullopt);
  EXPECT_TRUE(wait_until([&] { return pool_->status().checked_out == 0; }, 2s));
  const auto again = expect_lease(checkout(2000ms));
  ASSERT_TRUE(again);
  EXPECT_EQ(run_query(again, "SELECT 'still works'"), "still works");
  pool_->give_back(again, std::nullopt);
}

TEST_F(PoolPgTest, TerminatedBackendIsEvictedWithinOneSecondAndReplaced) {
  start_pool(fast_config(*shared_server_));
  ASSERT_TRUE(wait_until([&] { return pool_->status().idle == 2; }, 5s));
  const auto victim = backends(*shared_server_).front();
  const auto killed_at = Stopwatch::now();
  shared_server_->execute("SELECT pg_terminate_backend(" + std::to_string(victim) + ")");
  ASSERT_TRUE(
      wait_until([&] { return evictions("server_error") + evictions("server_closed") >= 1; }, 3s));
  const double detection = seconds_since(killed_at);
  std::printf("terminated backend evicted after %.3f s\n", detection);
  EXPECT_LT(detection, 1.0);
  EXPECT_TRUE(wait_until(
      [&] {
        auto pids = backends(*shared_server_);
        return pids.size() == 2 && std::find(pids.begin(), pids.end(), victim) == pids.end();
      },
      3s))
      << "the pool did not refill";
}

TEST_F(PoolPgTest, FrozenBackendIsEvictedAsPingTimeoutWithinIntervalPlusTimeout) {
  const auto config = fast_config(*shared_server_);
  start_pool(config);
  ASSERT_TRUE(wait_until([&] { return pool_->status().idle == 2; }, 5s));
  const auto victim = backends(*shared_server_).front();
  const auto frozen_at = Stopwatch::now();
  ASSERT_EQ(kill(victim, SIGSTOP), 0);
  const bool evicted = wait_until([&] { return evictions("ping_timeout") >= 1; }, 5s);
  const double detection = seconds_since(frozen_at);
  kill(victim, SIGCONT);
  ASSERT_TRUE(evicted);
  std::printf("frozen backend evicted after %.3f s\n", detection);
  const double bound =
      std::chrono::duration<double>(config.ping.interval + config.ping.timeout).count();
  EXPECT_LT(detection, bound + 0.5);
  // The histogram saw it, under the same reason.
  EXPECT_GE(metric("pgvigil_detection_latency_seconds_count",
                   {{"pool", "app"}, {"reason", "ping_timeout"}}),
            1);
  EXPECT_TRUE(wait_until([&] { return pool_->status().idle == 2; }, 3s));
}

TEST_F(PoolPgTest, StoppedServerEvictsAllBacksOffAndRefillsWhenItReturns) {
  auto server = testing::PgCluster::start_new();
  auto config = fast_config(*server);
  config.pool.reconnect = {Milliseconds(100), Milliseconds(800), Milliseconds(200)};
  start_pool(config);
  ASSERT_TRUE(wait_until([&] { return pool_->status().idle == 2; }, 5s));

  server->stop("fast");
  ASSERT_TRUE(wait_until([&] { return pool_->status().healthy() == 0; }, 3s));
  // A connection leaves the healthy count a moment before its eviction is counted.
  EXPECT_TRUE(
      wait_until([&] { return evictions("server_error") + evictions("server_closed") >= 2; }, 3s));

  // Over a 3 s window the attempts follow the back-off (100, 200, 400, 800, 800... ms, each
  // cut by up to half by jitter): a handful, not a busy loop.
  const auto failures = [&] { return metric("pgvigil_connect_failures_total", {{"pool", "app"}}); };
  const double before = failures();
  std::this_thread::sleep_for(3s);  // the window being measured, not a wait for a condition
  const double attempts = failures() - before;
  std::printf("connect attempts in 3 s while the server was down: %.0f\n", attempts);
  EXPECT_GE(attempts, 3);
  EXPECT_LE(attempts, 12);

  server->start();
  EXPECT_TRUE(wait_until([&] { return pool_->status().idle == 2; }, 3s))
      << "the pool did not refill after the server came back";
}

TEST_F(PoolPgTest, CheckoutTimesOutWhenThePoolIsExhausted) {
  auto config = fast_config(*shared_server_);
  config.pool.max_size = 2;
  start_pool(config);
  const auto first = expect_lease(checkout(2000ms));
  const auto second = expect_lease(checkout(2000ms));
  ASSERT_TRUE(first && second);
  const auto started = Stopwatch::now();
  auto third = checkout(300ms);
  const double waited = seconds_since(started);
  ASSERT_TRUE(std::holds_alternative<CheckoutError>(third));
  EXPECT_EQ(std::get<CheckoutError>(third).kind, CheckoutError::Kind::timeout);
  EXPECT_GE(waited, 0.29);
  EXPECT_LT(waited, 1.0);
  EXPECT_EQ(metric("pgvigil_checkout_timeouts_total", {{"pool", "app"}}), 1);

  // A connection given back goes to the client that waits for it, at once. The waiter's
  // deadline is far off, so only the hand-off can serve it soon after the give-back: a pool
  // that parked the connection as idle instead would leave the waiter until its deadline.
  const auto waiting_checkouts = [&] {
    std::promise<int> count;
    boost::asio::post(io_, [&] { count.set_value(pool_->waiting_checkouts()); });
    return count.get_future().get();
  };
  Stopwatch::time_point given_back_at;
  bool waiter_seen = false;
  std::thread giver([&] {
    // The give-back must find the checkout below already queued, or it would test the idle
    // path. Well before that checkout's 5 s deadline, so that a late hand-off still shows.
    waiter_seen = wait_until([&] { return waiting_checkouts() == 1; }, 2s);
    given_back_at = Stopwatch::now();
    pool_->give_back(first, std::nullopt);
  });
  auto waited_for = checkout(5000ms);
  const auto served_at = Stopwatch::now();
  giver.join();
  ASSERT_TRUE(waiter_seen) << "the checkout never queued as a waiter";
  const auto handed_on = expect_lease(std::move(waited_for));
  ASSERT_TRUE(handed_on);
  EXPECT_EQ(handed_on.get(), first.get());
  const double after_give_back = std::chrono::duration<double>(served_at - given_back_at).count();
  EXPECT_LT(after_give_back, 2.0) << "the waiter was served " << after_give_back
                                  << " s after the give-back, as at its 5 s deadline";
  pool_->give_back(handed_on, std::nullopt);
  pool_->give_back(second, std::nullopt);
}

TEST_F(PoolPgTest, CallbackWaitersTimeOutEachAtItsOwnDeadlineAndTheRestAreServed) {
  // The relay's waiters share one deadline timer (armed at the earliest); a later waiter with an
  // earlier deadline must still time out on time.
  auto config = fast_config(*shared_server_);
  config.pool.max_size = 1;
  start_pool(config);
  const auto held = expect_lease(checkout(2000ms));
  ASSERT_TRUE(held);

  struct Waited {
    std::promise<CheckoutResult> result;
    std::promise<double> after;
  };
  Waited patient, hasty, middling;
  const auto started = Stopwatch::now();
  const auto wait = [&](Milliseconds timeout, Waited& waited) {
    pool_->wait_for_connection(timeout, [&waited, started](CheckoutResult result) {
      waited.after.set_value(seconds_since(started));
      waited.result.set_value(std::move(result));
    });
  };
  boost::asio::post(io_, [&] {
    wait(5000ms, patient);
    wait(300ms, hasty);
    wait(700ms, middling);
  });
  const double hasty_after = hasty.after.get_future().get();
  auto hasty_result = hasty.result.get_future().get();
  const double middling_after = middling.after.get_future().get();
  auto middling_result = middling.result.get_future().get();
  ASSERT_TRUE(std::holds_alternative<CheckoutError>(hasty_result));
  EXPECT_EQ(std::get<CheckoutError>(hasty_result).kind, CheckoutError::Kind::timeout);
  EXPECT_GE(hasty_after, 0.29);
  EXPECT_LT(hasty_after, 0.6);
  ASSERT_TRUE(std::holds_alternative<CheckoutError>(middling_result));
  EXPECT_GE(middling_after, 0.69);
  EXPECT_LT(middling_after, 1.0);

  // The first waiter still waits, and gets the connection once it is given back.
  auto patient_future = patient.result.get_future();
  EXPECT_EQ(patient_future.wait_for(100ms), std::future_status::timeout);
  pool_->give_back(held, std::nullopt);
  ASSERT_EQ(patient_future.wait_for(2s), std::future_status::ready);
  const auto served = expect_lease(patient_future.get());
  ASSERT_TRUE(served);
  EXPECT_EQ(served.get(), held.get());
  EXPECT_LT(patient.after.get_future().get(), 3.0);
  pool_->give_back(served, std::nullopt);
}

// The caller decides that a lease is dirty and says so with a Death (the relay does when its
// client leaves mid-transaction: clients_pgtest's ClientKilledMidTransactionLeavesNothingBehind
// and PsqlKilledInsideATransactionIsEvictedDirty test that end to end).
TEST_F(PoolPgTest, LeaseGivenBackWithADeathIsEvictedAndNeverLentAgain) {
  const auto config = fast_config(*shared_server_);
  start_pool(config);
  const auto lease = expect_lease(checkout(2000ms));
  ASSERT_TRUE(lease);
  const auto pid = lease->backend_pid();
  const ServerConnection* const evicted = lease.get();
  ASSERT_EQ(PQsendQuery(lease->native_handle(), "BEGIN; SELECT 1"), 1);
  pool_->give_back(
      lease, Death{EvictionReason::dirty_return, "client left mid-transaction", Clock::now()});
  ASSERT_TRUE(wait_until([&] { return evictions("dirty_return") == 1; }, 2s));
  EXPECT_TRUE(wait_until(
      [&] {
        auto pids = backends(*shared_server_);
        return std::find(pids.begin(), pids.end(), pid) == pids.end();
      },
      3s));

  // Every connection the pool can lend at once (max_size), held together so that each is a
  // different one: none is the evicted connection or runs on its backend.
  std::vector<Lease> held;
  for (int i = 0; i < config.pool.max_size; ++i) {
    held.push_back(expect_lease(checkout(3000ms)));
    ASSERT_TRUE(held.back()) << "checkout " << i;
    EXPECT_NE(held.back().get(), evicted) << "the evicted connection was lent again";
    EXPECT_NE(held.back()->backend_pid(), pid) << "a lease runs on the evicted backend";
    EXPECT_EQ(run_query(held.back(), "SELECT 1"), "1");
  }
  for (const auto& other : held) pool_->give_back(other, std::nullopt);
}

TEST_F(PoolPgTest, ConnectionsAreRecycledAtTheirJitteredLifetime) {
  auto config = fast_config(*shared_server_);
  config.pool.max_lifetime = Milliseconds(1200);
  config.pool.lifetime_jitter = 0.3;
  start_pool(config);
  EXPECT_TRUE(wait_until([&] { return evictions("max_lifetime") >= 4; }, 6s));
  EXPECT_TRUE(wait_until([&] { return pool_->status().idle == 2; }, 3s));
}

TEST_F(PoolPgTest, IdleConnectionsAboveMinIdleAreClosedAfterIdleTimeout) {
  auto config = fast_config(*shared_server_);
  config.pool.min_idle = 1;
  config.pool.idle_timeout = Milliseconds(500);
  start_pool(config);
  const auto first = expect_lease(checkout(2000ms));
  const auto second = expect_lease(checkout(2000ms));
  const auto third = expect_lease(checkout(2000ms));
  ASSERT_TRUE(first && second && third);
  for (const auto& lease : {first, second, third}) pool_->give_back(lease, std::nullopt);
  EXPECT_TRUE(wait_until([&] { return evictions("idle_timeout") >= 2; }, 5s));
  EXPECT_TRUE(wait_until([&] { return pool_->status().idle == 1; }, 2s));
}

TEST_F(PoolPgTest, MissingDatabaseIsCountedByCauseAndReportedToWaitingClients) {
  auto config = fast_config(*shared_server_);
  config.server.dbname = "no_such_database";
  start_pool(config);
  ASSERT_TRUE(wait_until(
      [&] {
        return metric("pgvigil_connect_failures_total",
                      {{"pool", "app"}, {"cause", "database_missing"}}) >= 1;
      },
      3s));
  auto result = checkout(500ms);
  ASSERT_TRUE(std::holds_alternative<CheckoutError>(result));
  const auto& error = std::get<CheckoutError>(result);
  EXPECT_EQ(error.kind, CheckoutError::Kind::server_unreachable);
  EXPECT_NE(error.detail.find("does not exist"), std::string::npos) << error.detail;
}

TEST_F(PoolPgTest, AConnectionKilledWhileIdleIsNeverHandedOut) {
  start_pool(fast_config(*shared_server_));
  ASSERT_TRUE(wait_until([&] { return pool_->status().idle == 2; }, 5s));
  // Dead for real (terminate_backend waits until the backend has exited) before the checkouts.
  for (auto pid : backends(*shared_server_)) ASSERT_TRUE(shared_server_->terminate_backend(pid));
  for (int i = 0; i < 4; ++i) {
    const auto lease = expect_lease(checkout(3000ms));
    ASSERT_TRUE(lease);
    EXPECT_EQ(run_query(lease, "SELECT 1"), "1");
    pool_->give_back(lease, std::nullopt);
  }
}

// A connection given back goes straight to a client waiting for one; it gets the lending check
// first. Its holder did not notice that its backend was terminated: the waiter gets a new
// connection, not the dead one.
TEST_F(PoolPgTest, AConnectionKilledWhileLentIsNotHandedToAWaitingClient) {
  auto config = fast_config(*shared_server_);
  config.pool.max_size = 1;
  start_pool(config);
  const auto held = expect_lease(checkout(2000ms));
  ASSERT_TRUE(held);
  const auto dead_pid = held->backend_pid();
  std::promise<CheckoutResult> waited;
  std::promise<int> queued;
  boost::asio::post(io_, [&] {
    pool_->wait_for_connection(5000ms,
                               [&waited](CheckoutResult result) { waited.set_value(result); });
    queued.set_value(pool_->waiting_checkouts());
  });
  ASSERT_EQ(queued.get_future().get(), 1);
  ASSERT_TRUE(shared_server_->terminate_backend(dead_pid));
  pool_->give_back(held, std::nullopt);
  auto future = waited.get_future();
  ASSERT_EQ(future.wait_for(3s), std::future_status::ready);
  const auto served = expect_lease(future.get());
  ASSERT_TRUE(served);
  EXPECT_NE(served->backend_pid(), dead_pid);
  EXPECT_EQ(run_query(served, "SELECT 1"), "1");
  EXPECT_EQ(evictions("server_error") + evictions("checkout_check_failed"), 1);
  pool_->give_back(served, std::nullopt);
}

}  // namespace
}  // namespace pgvigil::pool
