#include "metrics/client_series.hpp"

#include <cctype>
#include <mutex>

namespace pgvigil::metrics {

ClientSeries::ClientSeries(const MetricFamilies& families, std::string pool,
                           std::span<const std::string_view> pin_causes)
    : families_(families),
      pool_(std::move(pool)),
      connections_(families_.client_connections.Add({{"pool", pool_}})),
      transactions_(families_.transactions.Add({{"pool", pool_}})),
      queries_(families_.queries.Add({{"pool", pool_}})),
      bytes_to_server_(families_.relayed_bytes.Add({{"pool", pool_}, {"direction", "to_server"}})),
      bytes_to_client_(families_.relayed_bytes.Add({{"pool", pool_}, {"direction", "to_client"}})) {
  // Every class exists from the start so "no such error yet" shows as 0, not as absence.
  for (std::size_t i = 0; i < kErrorClasses.size(); ++i) {
    errors_[i] =
        &families_.client_errors.Add({{"pool", pool_}, {"class", std::string(kErrorClasses[i])}});
  }
  errors_.back() =
      &families_.client_errors.Add({{"pool", pool_}, {"class", std::string(kOtherErrorClass)}});
  for (const auto cause : pin_causes) {
    pinned_.emplace_back(
        cause, &families_.pinned_clients.Add({{"pool", pool_}, {"cause", std::string(cause)}}));
  }
}

void ClientSeries::detach() {
  std::unique_lock lock(mutex_);
  if (detached_) return;
  detached_ = true;
  families_.client_connections.Remove(&connections_);
  for (auto* counter : errors_) families_.client_errors.Remove(counter);
  for (const auto& [cause, gauge] : pinned_) families_.pinned_clients.Remove(gauge);
  families_.transactions.Remove(&transactions_);
  families_.queries.Remove(&queries_);
  families_.relayed_bytes.Remove(&bytes_to_server_);
  families_.relayed_bytes.Remove(&bytes_to_client_);
}

std::size_t ClientSeries::error_class_index(std::string_view sqlstate) {
  if (sqlstate.size() < 2) return kErrorClasses.size();
  // SQLSTATEs are upper case; accept lower case too rather than losing the class.
  const std::array<char, 2> upper{
      static_cast<char>(std::toupper(static_cast<unsigned char>(sqlstate[0]))),
      static_cast<char>(std::toupper(static_cast<unsigned char>(sqlstate[1])))};
  const std::string_view prefix(upper.data(), upper.size());
  for (std::size_t i = 0; i < kErrorClasses.size(); ++i) {
    if (kErrorClasses[i] == prefix) return i;
  }
  return kErrorClasses.size();
}

std::string_view ClientSeries::error_class(std::string_view sqlstate) {
  const auto index = error_class_index(sqlstate);
  return index < kErrorClasses.size() ? kErrorClasses[index] : kOtherErrorClass;
}

void ClientSeries::client_pinned(std::string_view cause, int delta) {
  std::shared_lock lock(mutex_);
  if (detached_) return;
  for (const auto& [name, gauge] : pinned_) {
    if (name == cause) {
      gauge->Increment(delta);
      return;
    }
  }
}

void ClientSeries::client_connected() {
  std::shared_lock lock(mutex_);
  if (!detached_) connections_.Increment();
}

void ClientSeries::client_disconnected() {
  std::shared_lock lock(mutex_);
  if (!detached_) connections_.Decrement();
}

void ClientSeries::client_error(std::string_view sqlstate) {
  auto* counter = errors_[error_class_index(sqlstate)];
  std::shared_lock lock(mutex_);
  if (!detached_) counter->Increment();
}

void ClientSeries::relayed(const RelayCounts& counts) {
  const auto add = [](prometheus::Counter& counter, std::uint64_t count) {
    if (count > 0) counter.Increment(static_cast<double>(count));
  };
  std::shared_lock lock(mutex_);
  if (detached_) return;
  add(bytes_to_server_, counts.bytes_to_server);
  add(bytes_to_client_, counts.bytes_to_client);
  add(queries_, counts.queries);
  add(transactions_, counts.transactions);
}

}  // namespace pgvigil::metrics
