#pragma once
// One pool's metric children: the PoolMetrics handle that Registry::add_pool returns.

#include <map>
#include <shared_mutex>
#include <string>
#include <string_view>

#include "metrics/families.hpp"
#include "metrics/registry.hpp"

namespace pgvigil::metrics {

class PoolSeries final : public PoolMetrics {
 public:
  PoolSeries(const MetricFamilies& families, std::string pool);
  ~PoolSeries() override = default;

  // Creates the children for every label in `labels` not present yet. Idempotent, so a
  // reload that re-adds a pool keeps its series (and their values).
  void add_labels(const PoolLabelSets& labels);

  // Removes every child from its family. Afterwards each method is a no-op, so a pool still
  // holding this handle cannot touch freed children or resurrect series.
  void detach();

  void record_eviction(std::string_view reason, Seconds detection_latency) override;
  void observe_ping(Seconds latency) override;
  void observe_connect(Seconds latency) override;
  void record_connect_failure(std::string_view cause) override;
  void set_connections(std::string_view state, std::int64_t count) override;
  void record_keepalive_mismatch() override;
  void observe_server_rtt(Seconds rtt) override;
  void observe_checkout_waits(const std::vector<double>& bucket_increments,
                              double sum_seconds) override;
  void record_checkout_timeout() override;
  void record_server_health(std::string_view server, std::string_view state,
                            Seconds since_first_sign) override;
  void show_server(std::string_view server) override;
  void forget_server(std::string_view server) override;
  void set_server_role(std::string_view server, std::string_view role) override;
  void record_failover() override;
  void observe_failover(Seconds since_first_sign) override;

 private:
  struct EvictionSeries {
    prometheus::Counter* count;
    prometheus::Histogram* detection_latency;
  };
  // std::less<> lets string_view labels be looked up without building a std::string.
  template <typename T>
  using ByLabel = std::map<std::string, T, std::less<>>;

  struct ServerSeries {
    prometheus::Gauge* health;
    ByLabel<prometheus::Counter*> verdicts;  // by the state entered
    prometheus::Histogram* down_verdict;
  };

  prometheus::Labels labels_with(const char* name, const std::string& value) const;
  ServerSeries& server_series(std::string_view server);  // made on first use; mutex_ held
  void remove_server_series(const ServerSeries& series);

  const MetricFamilies families_;
  const std::string pool_;
  // Shared for recording (children are atomic themselves); exclusive for adding children and
  // for detach, which frees them.
  mutable std::shared_mutex mutex_;
  bool detached_ = false;
  ByLabel<EvictionSeries> evictions_;
  ByLabel<prometheus::Counter*> connect_failures_;
  ByLabel<prometheus::Gauge*> connections_;
  ByLabel<ServerSeries> servers_;
  ByLabel<ByLabel<prometheus::Gauge*>> roles_;  // by server, then by role
  prometheus::Histogram& ping_latency_;
  prometheus::Histogram& connect_latency_;
  prometheus::Counter& keepalive_mismatches_;
  prometheus::Gauge& server_rtt_;
  prometheus::Histogram& checkout_wait_;
  prometheus::Counter& checkout_timeouts_;
  prometheus::Counter& failovers_;
  prometheus::Histogram& failover_time_;
};

}  // namespace pgvigil::metrics
