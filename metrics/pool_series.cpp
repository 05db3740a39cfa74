#include "metrics/pool_series.hpp"

#include <algorithm>
#include <mutex>

#include "metrics/buckets.hpp"

namespace pgvigil::metrics {
namespace {

// A negative or NaN duration can only come from a caller's bug (steady clocks do not go
// back); clamping keeps one bad sample from making a histogram's _sum go backwards.
double clamped_seconds(Seconds value) { return std::max(0.0, value.count()); }

}  // namespace

namespace {

prometheus::Labels pool_labels(const std::string& pool, const std::string& user) {
  prometheus::Labels labels{{"pool", pool}};
  if (!user.empty()) labels.emplace("user", user);
  return labels;
}

}  // namespace

PoolSeries::PoolSeries(const MetricFamilies& families, std::string pool, std::string user)
    : families_(families),
      base_(pool_labels(pool, user)),
      checkout_wait_(families_.checkout_wait.Add(base_, buckets::kCheckoutWait)),
      checkout_timeouts_(families_.checkout_timeouts.Add(base_)),
      failovers_(families_.failovers.Add(base_)),
      failover_time_(families_.failover_time.Add(base_, buckets::kDetectionLatency)) {}

prometheus::Labels PoolSeries::labels_with(const char* name, const std::string& value) const {
  auto labels = base_;
  labels.emplace(name, value);
  return labels;
}

void PoolSeries::add_labels(const PoolLabelSets& labels) {
  std::unique_lock lock(mutex_);
  if (detached_) return;
  for (const auto& reason : labels.eviction_reasons) {
    if (std::ranges::find(eviction_reasons_, reason) == eviction_reasons_.end()) {
      eviction_reasons_.push_back(reason);
    }
  }
  for (const auto& cause : labels.connect_failure_causes) {
    if (std::ranges::find(connect_failure_causes_, cause) == connect_failure_causes_.end()) {
      connect_failure_causes_.push_back(cause);
    }
  }
  for (const auto& state : labels.connection_states) {
    if (connections_.contains(state)) continue;
    connections_.emplace(state, &families_.server_connections.Add(labels_with("state", state)));
  }
  for (auto& [host, series] : hosts_) add_vocabulary(host, series);
  for (const auto& server : labels.servers) host_series(server);
}

void PoolSeries::detach() {
  std::unique_lock lock(mutex_);
  if (detached_) return;
  detached_ = true;
  for (const auto& [state, gauge] : connections_) families_.server_connections.Remove(gauge);
  for (const auto& [server, series] : servers_) remove_server_series(series);
  servers_.clear();
  for (const auto& [host, series] : hosts_) remove_host_series(series);
  hosts_.clear();
  for (const auto& [server, gauges] : roles_) {
    for (const auto& [role, gauge] : gauges) families_.server_role.Remove(gauge);
  }
  roles_.clear();
  families_.failovers.Remove(&failovers_);
  families_.failover_time.Remove(&failover_time_);
  families_.checkout_wait.Remove(&checkout_wait_);
  families_.checkout_timeouts.Remove(&checkout_timeouts_);
  connections_.clear();
}

PoolSeries::HostSeries& PoolSeries::host_series(std::string_view host) {
  const auto found = hosts_.find(host);
  if (found != hosts_.end()) return found->second;
  const auto labels = labels_with("server", std::string(host));
  HostSeries series{{},
                    {},
                    &families_.ping_latency.Add(labels, buckets::kPingLatency),
                    &families_.connect_latency.Add(labels, buckets::kConnectLatency),
                    &families_.keepalive_mismatches.Add(labels),
                    &families_.server_rtt.Add(labels)};
  add_vocabulary(std::string(host), series);
  return hosts_.emplace(std::string(host), std::move(series)).first->second;
}

void PoolSeries::add_vocabulary(const std::string& host, HostSeries& series) {
  const auto labels = labels_with("server", host);
  for (const auto& reason : eviction_reasons_) {
    if (series.evictions.contains(reason)) continue;
    auto with_reason = labels;
    with_reason.emplace("reason", reason);
    series.evictions.emplace(reason, EvictionSeries{&families_.evictions.Add(with_reason),
                                                    &families_.detection_latency.Add(
                                                        with_reason, buckets::kDetectionLatency)});
  }
  for (const auto& cause : connect_failure_causes_) {
    if (series.connect_failures.contains(cause)) continue;
    auto with_cause = labels;
    with_cause.emplace("cause", cause);
    series.connect_failures.emplace(cause, &families_.connect_failures.Add(with_cause));
  }
}

void PoolSeries::remove_host_series(const HostSeries& series) {
  for (const auto& [reason, eviction] : series.evictions) {
    families_.evictions.Remove(eviction.count);
    families_.detection_latency.Remove(eviction.detection_latency);
  }
  for (const auto& [cause, counter] : series.connect_failures) {
    families_.connect_failures.Remove(counter);
  }
  families_.ping_latency.Remove(series.ping_latency);
  families_.connect_latency.Remove(series.connect_latency);
  families_.keepalive_mismatches.Remove(series.keepalive_mismatches);
  families_.server_rtt.Remove(series.server_rtt);
}

template <typename Record>
void PoolSeries::with_host(std::string_view host, Record record) {
  {
    std::shared_lock lock(mutex_);
    if (detached_) return;
    const auto found = hosts_.find(host);
    if (found != hosts_.end()) return record(found->second);
  }
  std::unique_lock lock(mutex_);
  if (!detached_) record(host_series(host));
}

void PoolSeries::record_eviction(std::string_view server, std::string_view reason,
                                 Seconds detection_latency) {
  with_host(server, [&](HostSeries& series) {
    const auto found = series.evictions.find(reason);
    if (found == series.evictions.end()) return;
    found->second.count->Increment();
    found->second.detection_latency->Observe(clamped_seconds(detection_latency));
  });
}

void PoolSeries::observe_ping(std::string_view server, Seconds latency) {
  with_host(server,
            [&](HostSeries& series) { series.ping_latency->Observe(clamped_seconds(latency)); });
}

void PoolSeries::observe_connect(std::string_view server, Seconds latency) {
  with_host(server,
            [&](HostSeries& series) { series.connect_latency->Observe(clamped_seconds(latency)); });
}

void PoolSeries::record_connect_failure(std::string_view server, std::string_view cause) {
  with_host(server, [&](HostSeries& series) {
    const auto found = series.connect_failures.find(cause);
    if (found != series.connect_failures.end()) found->second->Increment();
  });
}

void PoolSeries::set_connections(std::string_view state, std::int64_t count) {
  std::shared_lock lock(mutex_);
  if (detached_) return;
  const auto found = connections_.find(state);
  if (found != connections_.end()) found->second->Set(static_cast<double>(count));
}

void PoolSeries::record_keepalive_mismatch(std::string_view server) {
  with_host(server, [](HostSeries& series) { series.keepalive_mismatches->Increment(); });
}

void PoolSeries::observe_server_rtt(std::string_view server, Seconds rtt) {
  with_host(server, [&](HostSeries& series) { series.server_rtt->Set(clamped_seconds(rtt)); });
}

void PoolSeries::observe_checkout_waits(const std::vector<double>& bucket_increments,
                                        double sum_seconds) {
  std::shared_lock lock(mutex_);
  if (!detached_) checkout_wait_.ObserveMultiple(bucket_increments, std::max(sum_seconds, 0.0));
}

void PoolSeries::record_checkout_timeout() {
  std::shared_lock lock(mutex_);
  if (!detached_) checkout_timeouts_.Increment();
}

// The states of pool/server_health.hpp, in the order of their gauge values.
constexpr std::string_view kHealthStates[] = {"healthy", "suspect", "down"};

PoolSeries::ServerSeries& PoolSeries::server_series(std::string_view server) {
  const auto found = servers_.find(server);
  if (found != servers_.end()) return found->second;
  const auto labels = labels_with("server", std::string(server));
  ServerSeries series{&families_.server_health.Add(labels),
                      {},
                      &families_.server_down_verdict.Add(labels, buckets::kDetectionLatency)};
  for (const auto state : kHealthStates) {
    auto with_state = labels;
    with_state.emplace("verdict", std::string(state));
    series.verdicts.emplace(std::string(state), &families_.server_verdicts.Add(with_state));
  }
  return servers_.emplace(std::string(server), std::move(series)).first->second;
}

void PoolSeries::remove_server_series(const ServerSeries& series) {
  families_.server_health.Remove(series.health);
  for (const auto& [state, counter] : series.verdicts) families_.server_verdicts.Remove(counter);
  families_.server_down_verdict.Remove(series.down_verdict);
}

void PoolSeries::record_server_health(std::string_view server, std::string_view state,
                                      Seconds since_first_sign) {
  // Exclusive: the first change of a server adds its children.
  std::unique_lock lock(mutex_);
  if (detached_) return;
  auto& series = server_series(server);
  const auto value = std::find(std::begin(kHealthStates), std::end(kHealthStates), state);
  if (value == std::end(kHealthStates)) return;
  series.health->Set(static_cast<double>(value - std::begin(kHealthStates)));
  series.verdicts.find(state)->second->Increment();
  if (state == "down") series.down_verdict->Observe(clamped_seconds(since_first_sign));
}

void PoolSeries::show_server(std::string_view server) {
  std::unique_lock lock(mutex_);
  if (!detached_) server_series(server);
}

void PoolSeries::forget_server(std::string_view server) {
  std::unique_lock lock(mutex_);
  const auto found = servers_.find(server);
  if (found == servers_.end()) return;
  remove_server_series(found->second);
  servers_.erase(found);
}

// The roles of pool/server_role.hpp.
constexpr std::string_view kServerRoles[] = {"primary", "standby", "unknown"};

void PoolSeries::set_server_role(std::string_view server, std::string_view role) {
  // Exclusive: the first report of a server adds its children (connects are rare).
  std::unique_lock lock(mutex_);
  if (detached_) return;
  auto found = roles_.find(server);
  if (found == roles_.end()) {
    ByLabel<prometheus::Gauge*> gauges;
    for (const auto name : kServerRoles) {
      auto labels = labels_with("server", std::string(server));
      labels.emplace("role", std::string(name));
      gauges.emplace(std::string(name), &families_.server_role.Add(labels));
    }
    found = roles_.emplace(std::string(server), std::move(gauges)).first;
  }
  for (const auto& [name, gauge] : found->second) gauge->Set(name == role ? 1.0 : 0.0);
}

void PoolSeries::record_failover() {
  std::shared_lock lock(mutex_);
  if (!detached_) failovers_.Increment();
}

void PoolSeries::observe_failover(Seconds since_first_sign) {
  std::shared_lock lock(mutex_);
  if (!detached_) failover_time_.Observe(clamped_seconds(since_first_sign));
}

}  // namespace pgvigil::metrics
