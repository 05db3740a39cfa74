#pragma once
// The metric families of pgvigil, built once per Registry. This is the one place that maps
// statistics to Prometheus names, help texts and bucket layouts.

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace pgvigil::metrics {

// References into the prometheus::Registry that built them; valid as long as that registry.
struct MetricFamilies {
  prometheus::Family<prometheus::Counter>& evictions;
  prometheus::Family<prometheus::Histogram>& detection_latency;
  prometheus::Family<prometheus::Histogram>& ping_latency;
  prometheus::Family<prometheus::Histogram>& connect_latency;
  prometheus::Family<prometheus::Counter>& connect_failures;
  prometheus::Family<prometheus::Gauge>& server_connections;
  prometheus::Family<prometheus::Counter>& keepalive_mismatches;
  prometheus::Family<prometheus::Gauge>& server_rtt;
  prometheus::Family<prometheus::Histogram>& checkout_wait;
  prometheus::Family<prometheus::Counter>& checkout_timeouts;
  prometheus::Family<prometheus::Gauge>& server_health;
  prometheus::Family<prometheus::Counter>& server_verdicts;
  prometheus::Family<prometheus::Histogram>& server_down_verdict;
  prometheus::Family<prometheus::Gauge>& server_role;
  prometheus::Family<prometheus::Counter>& failovers;
  prometheus::Family<prometheus::Histogram>& failover_time;
  prometheus::Family<prometheus::Gauge>& client_connections;
  prometheus::Family<prometheus::Counter>& client_errors;
  prometheus::Family<prometheus::Gauge>& pinned_clients;
  prometheus::Family<prometheus::Counter>& client_startup_errors;
  prometheus::Family<prometheus::Counter>& transactions;
  prometheus::Family<prometheus::Counter>& queries;
  prometheus::Family<prometheus::Counter>& relayed_bytes;
  prometheus::Family<prometheus::Counter>& config_reloads;
  prometheus::Family<prometheus::Gauge>& worker_busy;
  prometheus::Family<prometheus::Counter>& worker_accepted;
  prometheus::Family<prometheus::Counter>& worker_moved_in;
  prometheus::Family<prometheus::Gauge>& build_info;
};

// Registers every family in `registry`; call once per registry (names must be unique).
MetricFamilies build_families(prometheus::Registry& registry);

}  // namespace pgvigil::metrics
