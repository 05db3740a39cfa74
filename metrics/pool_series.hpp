#pragma once
// One pool's metric children: the PoolMetrics handle that Registry::add_pool returns.

#include <map>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "metrics/families.hpp"
#include "metrics/registry.hpp"

namespace pgvigil::metrics {

class PoolSeries final : public PoolMetrics {
 public:
  // user: the role a per-user pool logs in as (a `user` label on every series); "": none.
  PoolSeries(const MetricFamilies& families, std::string pool, std::string user = "");
  ~PoolSeries() override = default;

  // Creates the children for every label in `labels` not present yet. Idempotent, so a
  // reload that re-adds a pool keeps its series (and their values).
  void add_labels(const PoolLabelSets& labels);

  // Removes every child from its family. Afterwards each method is a no-op, so a pool still
  // holding this handle cannot touch freed children or resurrect series.
  void detach();

  void record_eviction(std::string_view server, std::string_view reason,
                       Seconds detection_latency) override;
  void observe_ping(std::string_view server, Seconds latency) override;
  void observe_connect(std::string_view server, Seconds latency) override;
  void record_connect_failure(std::string_view server, std::string_view cause) override;
  void set_connections(std::string_view state, std::int64_t count) override;
  void record_keepalive_mismatch(std::string_view server) override;
  void observe_server_rtt(std::string_view server, Seconds rtt) override;
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
  // What one host of the database's list saw (label server="host:port").
  struct HostSeries {
    ByLabel<EvictionSeries> evictions;               // by reason
    ByLabel<prometheus::Counter*> connect_failures;  // by cause
    prometheus::Histogram* ping_latency;
    prometheus::Histogram* connect_latency;
    prometheus::Counter* keepalive_mismatches;
    prometheus::Gauge* server_rtt;
  };

  prometheus::Labels labels_with(const char* name, const std::string& value) const;
  ServerSeries& server_series(std::string_view server);  // made on first use; mutex_ held
  void remove_server_series(const ServerSeries& series);
  HostSeries& host_series(std::string_view host);  // made on first use; mutex_ held exclusively
  // Adds the children of the reasons and causes `series` lacks; mutex_ held exclusively.
  void add_vocabulary(const std::string& host, HostSeries& series);
  void remove_host_series(const HostSeries& series);
  // Runs `record` on the host's series: under the shared lock when they exist, else made first
  // under the exclusive one. Nothing once detached.
  template <typename Record>
  void with_host(std::string_view host, Record record);

  const MetricFamilies families_;
  const prometheus::Labels base_;  // pool, and user for a per-user pool
  // Shared for recording (children are atomic themselves); exclusive for adding children and
  // for detach, which frees them.
  mutable std::shared_mutex mutex_;
  bool detached_ = false;
  std::vector<std::string> eviction_reasons_;  // the label sets of add_labels, for new hosts
  std::vector<std::string> connect_failure_causes_;
  ByLabel<prometheus::Gauge*> connections_;
  ByLabel<ServerSeries> servers_;
  ByLabel<HostSeries> hosts_;
  ByLabel<ByLabel<prometheus::Gauge*>> roles_;  // by server, then by role
  prometheus::Histogram& checkout_wait_;
  prometheus::Counter& checkout_timeouts_;
  prometheus::Counter& failovers_;
  prometheus::Histogram& failover_time_;
};

}  // namespace pgvigil::metrics
