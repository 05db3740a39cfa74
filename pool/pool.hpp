#pragma once
// One pool of server connections for one configured database. It lives on one executor (its
// home worker) and keeps all of its state there, so it needs no locks; the public entry points
// that other threads call (checkout, give_back, shutdown, status) hop onto that executor.
//
// A periodic maintenance task refills to min_idle (with back-off while the server refuses),
// closes connections past their lifetime and at most one idle connection above min_idle per run.
// Each connection idle for more than a moment has a watcher that notices a close or a FATAL at
// once and pings it when it has been quiet for ping.interval.

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <variant>

#include "metrics/registry.hpp"
#include "pool/backoff.hpp"
#include "pool/checkout_wait_tally.hpp"
#include "pool/connection_state.hpp"
#include "pool/failure_diagnosis.hpp"
#include "pool/log_throttle.hpp"
#include "pool/pool_settings.hpp"
#include "pool/server_health.hpp"

namespace pgvigil::pool {

class ServerConnection;  // server_connection.hpp: what a lease holder uses
struct ConnectFailure;

struct CheckoutError {
  // server_down: the server's health says so and pool.fail_fast is on. paused: the database
  // stayed paused for pool.pause_timeout.
  enum class Kind { timeout, server_unreachable, server_down, paused, shutting_down };
  Kind kind;
  std::string detail;  // what a client should read: the last connect failure, or the wait
};

using Lease = std::shared_ptr<ServerConnection>;
using CheckoutResult = std::variant<Lease, CheckoutError>;

// A thread-safe snapshot for readiness and status lines.
struct PoolStatus {
  int connecting = 0;
  int idle = 0;
  int probing = 0;
  int checked_out = 0;
  int healthy() const { return idle + probing + checked_out; }
  std::string last_connect_failure;  // empty when the last attempt worked
  bool paused = false;
  // The servers the pool's connections reach, each with the role it was found in and how
  // many: "127.0.0.1:5432 (primary)", or "h1:5432 (standby, 2), h2:5432 (standby, 1)"
  // where they are spread; "" with no connection.
  std::string servers;
};

// The label sets a pool's metrics are created with: its closed vocabularies, and the servers
// of its list.
metrics::PoolLabelSets pool_label_sets(const ServerEndpoint& server);

class Pool : public std::enable_shared_from_this<Pool>, public HealthListener {
 public:
  // executor: the io_context of the pool's home worker. health: the server's, shared by the
  // shards of one database; null: the pool keeps its own.
  Pool(boost::asio::io_context::executor_type executor, PoolConfig config,
       std::shared_ptr<metrics::PoolMetrics> metrics,
       std::shared_ptr<ServerHealth> health = nullptr);
  ~Pool() override;

  // Starts maintenance on the pool's executor. Thread-safe.
  void start();

  // Waits up to `timeout` for a connection known to be healthy. Thread-safe: completes on the
  // caller's executor. The lease must be used on the pool's executor (its socket stays
  // registered there); tests that only run blocking libpq calls on it may use any thread.
  boost::asio::awaitable<CheckoutResult> checkout(Milliseconds timeout);

  // The fast path of checkout() for a caller on the pool's own thread: an idle connection that
  // passes the cheap check and needs no ping, at once; null when checkout() must be used.
  Lease try_checkout_now();

  // The waiting half of checkout() for a caller on the pool's own thread whose
  // try_checkout_now() found no idle connection: done(result) runs on the pool's executor
  // once a connection comes back (first come, first served), or at the timeout or shutdown.
  // A callback rather than a coroutine: at high concurrency most transactions wait here.
  void wait_for_connection(Milliseconds timeout, std::function<void(CheckoutResult)> done);
  // No idle connection at all (so try_checkout_now() failing means waiting, not a ping).
  bool nothing_idle() const { return (idle_.empty() || paused_) && !stopping_; }
  // Checkouts (coroutine or callback) waiting for a connection now. On the pool's executor only.
  int waiting_checkouts() const;

  // Hands a leased connection back. nullopt: it is at ReadyForQuery, idle, clean. A death: the
  // lease holder found it broken or left it in an unknown state. Thread-safe.
  void give_back(Lease connection, std::optional<Death> death);

  // Closes every pooled connection politely (reason shutdown), fails waiting checkouts and
  // closes leased connections as they come back. Thread-safe.
  boost::asio::awaitable<void> shutdown();

  // Applies a reloaded configuration of the same database on the pool's executor, without
  // dropping healthy connections: new keep-alive options are set on every live server socket
  // and read back; pings, lifetime, sizing, timeouts and back-off apply from now on; a shrink
  // of max_size closes surplus idle connections. A changed server endpoint (address, dbname,
  // user, password, TLS, application_name) drains the old connections instead: idle ones are
  // evicted with reason reload, leased ones when they come back. Thread-safe.
  boost::asio::awaitable<void> update_config(PoolConfig config);

  // The database left the configuration: fails waiting checkouts, evicts idle connections with
  // reason reload and leased ones as they come back; completes once no connection is left.
  // Thread-safe.
  boost::asio::awaitable<void> retire();

  // --- pause and resume (pool_pause.cpp), for planned switchovers
  // Stops lending: transactions in flight finish and their connections close as they come
  // back, idle ones close now, and checkouts wait (up to pool.pause_timeout) for resume().
  // Thread-safe; takes effect on the pool's executor.
  void pause();
  // Lends again: connects afresh (to whichever host now matches target_session_attrs) and
  // serves the waiting checkouts. Thread-safe.
  void resume();
  bool paused() const { return paused_flag_.load(std::memory_order_relaxed); }

  // --- the server's health (pool_health.cpp)
  HealthState server_health() const { return health_->state(); }
  // A lease holder's sign of trouble: a request on its connection unanswered for `silent`
  // (ping.interval or more). The server turns suspect and is asked on other paths; a server
  // that answers there is merely slow and nothing happens. On the pool's executor.
  void suspect_server(std::uint64_t connection_id, Clock::duration silent);
  // HealthListener: thread-safe, they hop onto the pool's executor.
  void probe_server(std::uint64_t round) override;
  void server_down(const Death& death) override;

  // --- the shards of one database lending each other (pool_sharing.cpp)
  // The database's other shards. A shard with a waiting checkout and no room of its own asks
  // them: one with no waiter of its own gives up room it has not opened, or the place of an
  // idle connection (closed; the borrower opens one). Either moves a unit of max_size for good,
  // so the shards' sizes follow their clients and always add up to the database's. Call once,
  // before start().
  void set_siblings(std::vector<std::weak_ptr<Pool>> siblings) { siblings_ = std::move(siblings); }
  // What this pool could give a sibling now: idle connections and unused room. Thread-safe, a
  // moment's picture.
  int lendable() const {
    return count(ConnectionState::idle) +
           std::max(0, capacity_mirror_.load(std::memory_order_relaxed) - live_connections());
  }

  PoolStatus status() const;
  // Connections in `state` now. Thread-safe.
  int count(ConnectionState state) const {
    return shared_counts_[static_cast<std::size_t>(state)].load(std::memory_order_relaxed);
  }
  const std::shared_ptr<metrics::PoolMetrics>& metrics() const { return metrics_; }
  const std::string& name() const { return name_; }
  // The home worker's executor, where leases are used.
  boost::asio::io_context::executor_type executor() const { return home_; }

 private:
  struct Waiter;
  struct ProbeRound;

  boost::asio::awaitable<CheckoutResult> checkout_here(Milliseconds timeout);
  boost::asio::awaitable<void> maintain();
  // probe: a connection opened to ask the server during a health round (pool_health.cpp),
  // closed again if the pool has no room for it.
  boost::asio::awaitable<void> open_connection(std::shared_ptr<ProbeRound> probe = nullptr);
  // Connects to the first host, from preferred_host_ on, whose role matches
  // target_session_attrs (pool_hosts.cpp). Each host gets per_host_timeout.
  boost::asio::awaitable<std::optional<ConnectFailure>> connect_to_matching_host(
      ServerConnection& connection, Clock::duration per_host_timeout);
  // The order a new connection tries the hosts in: from preferred_host_ on, and where several
  // servers may serve the pool (standby, prefer-standby, read-only), least connections first.
  // reserved: the first host's count holds this attempt until it is destroyed.
  std::vector<std::size_t> host_order(const std::vector<ServerHost>& hosts,
                                      HostLoad::Reservation& reserved) const;
  // A standby lagging past pool.max_replication_lag: why (reason replication_lag), or the death
  // of the connection asked; nullopt when within the bound or not measured.
  boost::asio::awaitable<std::optional<Death>> excess_replication_lag(ServerConnection& connection,
                                                                      Clock::time_point deadline);
  boost::asio::awaitable<void> watch_idle(Lease connection);
  boost::asio::awaitable<void> shutdown_here();
  boost::asio::awaitable<void> update_config_here(PoolConfig config);
  boost::asio::awaitable<void> retire_here();
  // Pings an idle connection now (it is probing meanwhile): evicted when it dies, available
  // again when it answers. Whether it answered.
  boost::asio::awaitable<bool> ping_idle(Lease connection);
  boost::asio::awaitable<void> probe_idle(Lease connection, std::shared_ptr<ProbeRound> round);
  void probe_here(std::uint64_t round);
  void server_down_here(const Death& death);
  void pause_here();
  void resume_here();
  // A checkout's deadline while paused: pool.pause_timeout from its start, or from the pause
  // for one that was waiting already.
  Clock::time_point paused_deadline(Clock::time_point started) const;
  CheckoutError paused_error();
  // The end of one probe of a round: the first answer makes the server healthy; the last
  // probe without one reports the round unanswered.
  void probe_done(ProbeRound& round, bool answered);
  // A death that says the path or the server stopped answering, not only this connection.
  void tell_health(const Death& death, std::uint64_t connection_id);
  bool failing_fast() const;  // pool.fail_fast, and the server is down
  CheckoutError server_down_error() const;
  void apply_keepalive_to(ServerConnection& connection);
  void close_surplus_idle();

  // max_size as lent and borrowed: the connections this pool may hold now. On its executor.
  int capacity() const { return config_->pool.max_size + capacity_delta_; }
  void publish_capacity() {
    capacity_mirror_.store(capacity(), std::memory_order_relaxed);
    share_mirror_.store(config_->pool.max_size, std::memory_order_relaxed);
  }
  // A waiter arrived and this pool cannot serve it soon: one sibling is asked.
  void ask_siblings();
  // On the lender's executor, asked by `borrower`.
  void lend_to(std::shared_ptr<Pool> borrower);
  // On the borrower's executor: the lender's answer, room for one connection or none.
  // ask_again: its idle connection was too fresh to give up (kLendAfterIdle); ask again soon.
  // reply: the answer to an ask (else a debt paid unasked). epoch: the lender's share_epoch_.
  void take_loan(bool room, bool ask_again, bool reply, std::uint64_t epoch);
  // Gives `borrower` a unit of this pool's max_size, unasked (a debt paid).
  void grant(std::shared_ptr<Pool> borrower);
  // The oldest borrower still owed a place; null when none is.
  std::shared_ptr<Pool> next_creditor();
  // Unopened room (a connection closed, a reload): it goes to the borrowers owed a place.
  void pay_debts_with_room();
  // This pool holds more than its share of the database (its max_size) and `borrower` less.
  // Thread-safe (the mirrors).
  bool owes(const Pool& borrower) const;
  void answer(std::shared_ptr<Pool> borrower, bool room, bool ask_again);
  // Closes an idle or returned connection whose place goes to a sibling (reason rebalanced).
  void give_up_place(Lease connection);
  // A connection came back: its place goes to the oldest borrower still owed one. false: kept.
  bool pay_debt(const Lease& connection);
  // Stopping or pausing: owed nothing any more (each borrower asks again when it needs to).
  void cancel_debts() { debts_.clear(); }

  int live_connections() const {  // every connection but those closing
    return count(ConnectionState::connecting) + count(ConnectionState::idle) +
           count(ConnectionState::probing) + count(ConnectionState::checked_out);
  }
  void transition(ServerConnection& connection, ConnectionState to);
  void adjust_count(ConnectionState state, int delta);
  void forget(const Lease& connection);  // closes a connection in state closing and drops it
  // A connection reached its server (+1) or is gone (-1): status() names the servers in use.
  void count_on_server(ServerConnection& connection, int delta);
  // Where a connection made available comes from: a brand-new one was opened for this shard's
  // own clients (a debt is paid from room before opening), so it never pays a debt, which would
  // waste its connect.
  enum class Arrival : std::uint8_t { returned, opened };
  void make_available(const Lease& connection, Arrival arrival = Arrival::returned);
  struct Deferred;
  // Runs task once, delay from now, however often it is asked for until then.
  void run_once_after(Deferred& deferred, Clock::duration delay, void (Pool::*task)());
  void publish_metrics();
  void count_checkout_wait(Clock::duration wait);
  void start_due_watchers();
  void evict(const Lease& connection, const Death& death);
  // The metrics' server label of what `connection` did: the host of the list it reached.
  std::string server_label(const ServerConnection& connection) const;
  // Its server reported another role (pool_hosts.cpp): the role metric follows, and it goes.
  void evict_role_changed(const Lease& connection);
  // `host` no longer has the role the pool wants (death says why): idle connections to it go
  // now, lent and pinged ones are asked again when they come back. On the pool's executor; a
  // shard that found it out tells its siblings.
  void drop_connections_to(const ServerHost& host, const Death& death);
  // A connection whose client saw 25006 on a primary's (role_suspect), on its way to idle: the
  // server's role is asked; if it no longer matches, every connection to it goes (role_changed),
  // lent ones when they come back.
  boost::asio::awaitable<void> recheck_role(Lease connection);
  // Asks a probing connection's server its role (kRoleQuery). true when it still matches the
  // target; otherwise the connection and the idle ones to the same host are evicted
  // (role_changed, detail starting with `evidence`), or the connection alone when the question
  // fails, and false.
  boost::asio::awaitable<bool> confirm_role(Lease connection, const char* evidence);
  void on_return(const Lease& connection, std::optional<Death> death);
  std::optional<Death> check_before_lending(ServerConnection& connection);
  // The most recently used idle connection that passes check_before_lending (those that fail
  // are evicted on the way); it stays idle for the caller to lend or ping. Null when none.
  Lease newest_healthy_idle();
  // Silent for longer than validate_after_idle: pinged before it is lent.
  bool long_idle(const ServerConnection& connection, Clock::time_point now) const;
  void enqueue(const std::shared_ptr<Waiter>& waiter);
  void wake(const std::shared_ptr<Waiter>& waiter);
  void expire_waiters();  // times out the callback waiters whose deadline passed
  void arm_waiter_deadline(Clock::time_point at);
  CheckoutError checkout_failure(Milliseconds timeout);  // counts the timeout, says why
  void verify_keepalive(ServerConnection& connection);
  void close_expired_idle(Clock::time_point now);
  void trim_one_idle(Clock::time_point now);
  void open_missing(Clock::time_point now);
  Clock::time_point jittered_ping_due(const ServerConnection& connection);
  void wake_maintenance();
  bool on_own_thread() const;

  boost::asio::io_context::executor_type home_;
  boost::asio::any_io_executor executor_;  // home_, for Asio's interfaces that take any
  std::string name_;
  std::shared_ptr<const PoolConfig> config_;
  std::shared_ptr<metrics::PoolMetrics> metrics_;
  std::shared_ptr<ServerHealth> health_;
  boost::asio::steady_timer maintenance_timer_;
  struct Deferred {
    explicit Deferred(boost::asio::any_io_executor executor) : timer(executor) {}
    boost::asio::steady_timer timer;
    bool scheduled = false;
  };
  Deferred watch_start_;  // starts watchers on connections idle long enough
  Deferred loan_retry_;   // asks the siblings again (take_loan)
  // Checkouts happen on every transaction; their waits reach the histogram at most every
  // kMetricsPublishPeriod, which keeps the histogram's locks off the relay's path.
  Deferred metrics_publish_;
  CheckoutWaitTally checkout_waits_;
  std::unordered_map<std::uint64_t, Lease> connections_;  // every connection not yet closed
  std::deque<Lease> idle_;                                // most recently used at the back
  std::deque<std::shared_ptr<Waiter>> waiters_;
  // One timer for the deadlines of all callback waiters (wait_for_connection), armed at the
  // earliest: a timer per waiter cost a timer-queue insert and removal on every waited checkout.
  boost::asio::steady_timer waiter_deadline_timer_;
  Clock::time_point waiter_deadline_at_ = Clock::time_point::max();
  std::array<int, kAllConnectionStates.size()> counts_{};
  Backoff backoff_;
  // The index in config_->server.hosts of the server that last matched: tried first.
  std::size_t preferred_host_ = 0;
  Clock::time_point next_connect_at_{};
  Clock::time_point last_failure_at_{};
  LogThrottle failure_log_{std::chrono::seconds(10)};
  std::mt19937_64 random_{std::random_device{}()};
  std::uint64_t next_id_ = 0;
  bool stopping_ = false;
  bool paused_ = false;  // nothing is lent, nothing kept idle, nothing opened (Pool::pause)
  Clock::time_point paused_at_{};
  EvictionReason stop_reason_ = EvictionReason::shutdown;  // reload when the pool is retired
  // Bumped when a reload changes the server endpoint; connections of an older generation are
  // evicted (reason reload) whenever they would become idle.
  std::uint64_t endpoint_generation_ = 0;

  std::vector<std::weak_ptr<Pool>> siblings_;
  std::size_t next_sibling_ = 0;  // asked in turn
  int capacity_delta_ = 0;        // units of max_size borrowed (+) or lent (-)
  // Bumped when a reload re-splits max_size (the deltas start again from 0): a grant made
  // before it is not counted after it.
  std::uint64_t share_epoch_ = 0;
  int loans_asked_ = 0;           // asks of siblings not answered yet
  std::deque<std::shared_ptr<Pool>> debts_;  // borrowers owed the next place that frees

  // Mirrors for other threads (status, readiness).
  std::atomic<int> capacity_mirror_{0};  // capacity()
  std::atomic<int> share_mirror_{0};     // config_->pool.max_size
  std::array<std::atomic<int>, kAllConnectionStates.size()> shared_counts_{};
  std::atomic<bool> paused_flag_{false};  // set at once by pause(), before paused_ follows
  mutable std::mutex failure_mutex_;
  std::string last_connect_failure_;
  // Live connections by server, and the role each server was found in: for status().
  struct ServerInUse {
    std::string role;
    int connections = 0;
  };
  mutable std::mutex servers_mutex_;
  std::map<std::string, ServerInUse> servers_in_use_;
};

}  // namespace pgvigil::pool
