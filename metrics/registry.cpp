#include "metrics/registry.hpp"

#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <array>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "metrics/client_series.hpp"
#include "metrics/families.hpp"
#include "metrics/pool_series.hpp"

namespace pgvigil::metrics {

struct Registry::Families {
  explicit Families(prometheus::Registry& registry)
      : metric(build_families(registry)),
        // Both results exist from the start so "no error yet" shows as 0, not as absence.
        reloads_succeeded(metric.config_reloads.Add({{"result", "success"}})),
        reloads_failed(metric.config_reloads.Add({{"result", "error"}})) {
    for (std::size_t i = 0; i < ClientSeries::kErrorClasses.size(); ++i) {
      startup_errors[i] = &metric.client_startup_errors.Add(
          {{"class", std::string(ClientSeries::kErrorClasses[i])}});
    }
    startup_errors.back() = &metric.client_startup_errors.Add(
        {{"class", std::string(ClientSeries::kOtherErrorClass)}});
  }

  MetricFamilies metric;
  prometheus::Counter& reloads_succeeded;
  prometheus::Counter& reloads_failed;
  // Indexed like ClientSeries::kErrorClasses, then "other"; every class from the start.
  std::array<prometheus::Counter*, ClientSeries::kErrorClasses.size() + 1> startup_errors{};
  // Guards the map only; each PoolSeries guards its own children.
  std::mutex pools_mutex;
  std::map<std::string, std::shared_ptr<PoolSeries>, std::less<>> pools;
  std::map<std::string, std::shared_ptr<ClientSeries>, std::less<>> client_pools;
  struct WorkerSeries {
    prometheus::Gauge* busy;
    prometheus::Counter* accepted;
    prometheus::Counter* moved_in;
    Registry::WorkerFigures published;
  };
  std::mutex workers_mutex;
  std::vector<WorkerSeries> workers;  // by worker index, made as they are first set
};

Registry::Registry(std::string_view version)
    : registry_(std::make_shared<prometheus::Registry>()),
      families_(std::make_unique<Families>(*registry_)) {
  families_->metric.build_info.Add({{"version", std::string(version)}}).Set(1);
}

Registry::~Registry() {
  // Pools may hold their handles longer than the registry lives; detaching turns those
  // handles into no-ops before the children they point to are destroyed with registry_.
  std::lock_guard lock(families_->pools_mutex);
  for (auto& [name, series] : families_->pools) series->detach();
  for (auto& [name, series] : families_->client_pools) series->detach();
}

namespace {

// The key of a pool's series: its name, and for a per-user pool the user after a NUL (which no
// database or role name holds).
std::string series_key(const std::string& pool, const std::string& user) {
  return user.empty() ? pool : pool + '\0' + user;
}

}  // namespace

std::shared_ptr<PoolMetrics> Registry::add_pool(const std::string& pool,
                                                const PoolLabelSets& labels,
                                                const std::string& user) {
  std::lock_guard lock(families_->pools_mutex);
  auto& series = families_->pools[series_key(pool, user)];
  if (!series) series = std::make_shared<PoolSeries>(families_->metric, pool, user);
  series->add_labels(labels);
  return series;
}

std::shared_ptr<ClientMetrics> Registry::add_client_pool(
    const std::string& pool, std::span<const std::string_view> pin_causes) {
  std::lock_guard lock(families_->pools_mutex);
  auto& series = families_->client_pools[pool];
  if (!series) series = std::make_shared<ClientSeries>(families_->metric, pool, pin_causes);
  return series;
}

void Registry::remove_pool(const std::string& pool) {
  // Detach under the map lock: a concurrent add_pool of the same name must not pick up
  // children (Family::Add returns existing ones for equal labels) that are being removed.
  std::lock_guard lock(families_->pools_mutex);
  if (const auto found = families_->pools.find(pool); found != families_->pools.end()) {
    found->second->detach();
    families_->pools.erase(found);
  }
  if (const auto found = families_->client_pools.find(pool);
      found != families_->client_pools.end()) {
    found->second->detach();
    families_->client_pools.erase(found);
  }
}

void Registry::remove_user_pool(const std::string& pool, const std::string& user) {
  std::lock_guard lock(families_->pools_mutex);
  if (const auto found = families_->pools.find(series_key(pool, user));
      found != families_->pools.end()) {
    found->second->detach();
    families_->pools.erase(found);
  }
}

void Registry::record_config_reload(bool success) {
  (success ? families_->reloads_succeeded : families_->reloads_failed).Increment();
}

void Registry::startup_error(std::string_view sqlstate) {
  families_->startup_errors[ClientSeries::error_class_index(sqlstate)]->Increment();
}

namespace {

// A counter kept elsewhere as a running total: moved by what it grew since it was last published.
void advance(prometheus::Counter& counter, std::uint64_t total, std::uint64_t& published) {
  if (total <= published) return;
  counter.Increment(static_cast<double>(total - published));
  published = total;
}

}  // namespace

void Registry::set_worker(std::size_t worker, const WorkerFigures& figures) {
  std::lock_guard lock(families_->workers_mutex);
  auto& workers = families_->workers;
  while (workers.size() <= worker) {
    const prometheus::Labels labels{{"worker", std::to_string(workers.size())}};
    workers.push_back({&families_->metric.worker_busy.Add(labels),
                       &families_->metric.worker_accepted.Add(labels),
                       &families_->metric.worker_moved_in.Add(labels),
                       {}});
  }
  auto& series = workers[worker];
  series.busy->Set(figures.busy);
  advance(*series.accepted, figures.accepted, series.published.accepted);
  advance(*series.moved_in, figures.moved_in, series.published.moved_in);
}

void Registry::on_scrape(std::function<void()> refresh) { refresh_ = std::move(refresh); }

std::string Registry::serialize() const {
  if (refresh_) refresh_();
  return prometheus::TextSerializer{}.Serialize(registry_->Collect());
}

prometheus::Registry& Registry::prometheus_registry() { return *registry_; }

}  // namespace pgvigil::metrics
