#pragma once
// The one place where pgvigil's statistics get Prometheus names. Families are built once in the
// constructor; per-pool children are added from closed label sets when a pool is added and
// removed with it. Every method is thread-safe (prometheus-cpp children are atomic).

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "metrics/proxy_metrics.hpp"

namespace prometheus {
class Registry;
}

namespace pgvigil::metrics {

using Seconds = std::chrono::duration<double>;

// Closed label vocabularies, handed in by the owner of each vocabulary (the pool's enums).
struct PoolLabelSets {
  std::vector<std::string> eviction_reasons;
  std::vector<std::string> connect_failure_causes;
  std::vector<std::string> connection_states;
  // The database's servers as configured (host:port, the `server` label): the series that
  // concern one server are made at 0 for each. A server outside the list (a reload changed it)
  // gets its series when it is first recorded.
  std::vector<std::string> servers;
};

// Handle of one pool's metric children. Reasons, causes and states outside the sets given at
// add_pool are ignored (counted nowhere) rather than creating unbounded series. `server` is the
// host:port of the database's list the connection reached.
class PoolMetrics {
 public:
  virtual ~PoolMetrics() = default;
  virtual void record_eviction(std::string_view server, std::string_view reason,
                               Seconds detection_latency) = 0;
  virtual void observe_ping(std::string_view server, Seconds latency) = 0;
  virtual void observe_connect(std::string_view server, Seconds latency) = 0;
  virtual void record_connect_failure(std::string_view server, std::string_view cause) = 0;
  // Connections in a state now. Set when metrics are read (Registry::on_scrape), from the
  // pools' own counts, so the relay's path touches no shared gauge and the shards of a database
  // add up.
  virtual void set_connections(std::string_view state, std::int64_t count) = 0;
  virtual void record_keepalive_mismatch(std::string_view server) = 0;
  virtual void observe_server_rtt(std::string_view server, Seconds rtt) = 0;
  // A batch of checkout waits: how many fell in each bucket of buckets::kCheckoutWait (then
  // +Inf, not cumulative) and the sum of their waits. Pools count their checkouts and report
  // them this way, since every transaction checks out a connection (pool/checkout_wait_tally).
  virtual void observe_checkout_waits(const std::vector<double>& bucket_increments,
                                      double sum_seconds) = 0;
  virtual void record_checkout_timeout() = 0;
  // A server's health (pool/server_health.hpp) entered `state` ("healthy", "suspect",
  // "down"; 0, 1, 2 in pgvigil_server_health). A "down" verdict also records the time from the
  // first sign of trouble.
  virtual void record_server_health(std::string_view server, std::string_view state,
                                    Seconds since_first_sign) = 0;
  // The pool reaches `server`: its health series are made, healthy, every counter at 0.
  virtual void show_server(std::string_view server) = 0;
  // The pool no longer reaches `server` (a reload moved it): its health series go.
  virtual void forget_server(std::string_view server) = 0;
  // A connection found `server` (one host of the database's list) in `role` ("primary",
  // "standby" or "unknown"): pgvigil_server_role is 1 for that role, 0 for the others.
  virtual void set_server_role(std::string_view server, std::string_view role) = 0;
  // The database's connections moved to another server of its list (a failover, a switchover).
  virtual void record_failover() = 0;
  // The first transaction served on the new server, this long after the first sign that the old
  // one was going (pool/failover_clock.hpp).
  virtual void observe_failover(Seconds since_first_sign) = 0;
};

class Registry final : public StartupErrorMetrics {
 public:
  explicit Registry(std::string_view version);
  ~Registry() override;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // user: for a per-user pool (databases.<name>.user_pools), the role it logs in as; every one
  // of its series carries it as a `user` label.
  std::shared_ptr<PoolMetrics> add_pool(const std::string& pool, const PoolLabelSets& labels,
                                        const std::string& user = "");
  // The client-side series of `pool` (connections, errors by SQLSTATE class, transactions,
  // queries, relayed bytes), every child created at 0. Returns the same handle for a pool
  // already added.
  // pin_causes: the closed set of causes of pgvigil_pinned_clients (they must outlive the
  // registry: string literals).
  std::shared_ptr<ClientMetrics> add_client_pool(const std::string& pool,
                                                 std::span<const std::string_view> pin_causes = {});
  // Removes the pool's server-side and client-side series; handles held after that are no-ops.
  void remove_pool(const std::string& pool);
  // Removes one per-user pool's server-side series.
  void remove_user_pool(const std::string& pool, const std::string& user);

  // Config reloads by result ("success" or "error").
  void record_config_reload(bool success);
  void startup_error(std::string_view sqlstate) override;
  // Worker `worker`'s pgvigil_worker_busy_ratio, the clients it took and the sessions that moved
  // to it so far (running totals; the counters move by the difference). Called when metrics are
  // read.
  struct WorkerFigures {
    double busy = 0;
    std::uint64_t accepted = 0;
    std::uint64_t moved_in = 0;
  };
  void set_worker(std::size_t worker, const WorkerFigures& figures);

  // Runs at the start of every serialize(), to bring in values kept elsewhere (the connection
  // gauges, the relay counters). One hook; a later call replaces it. Runs on the thread that
  // serializes.
  void on_scrape(std::function<void()> refresh);

  // The Prometheus text exposition format of everything registered.
  std::string serialize() const;

  // For components that add families of their own (the proxy).
  prometheus::Registry& prometheus_registry();

 private:
  struct Families;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<Families> families_;
  std::function<void()> refresh_;
};

}  // namespace pgvigil::metrics
