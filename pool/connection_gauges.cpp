#include "pool/connection_gauges.hpp"

#include <array>
#include <map>

namespace pgvigil::pool {

void publish_connection_gauges(const std::vector<std::shared_ptr<Pool>>& pools) {
  using Counts = std::array<std::int64_t, kAllConnectionStates.size()>;
  std::map<metrics::PoolMetrics*, Counts> totals;
  for (const auto& pool : pools) {
    auto& counts = totals[pool->metrics().get()];
    for (std::size_t index = 0; index < kAllConnectionStates.size(); ++index) {
      counts[index] += pool->count(kAllConnectionStates[index]);
    }
  }
  for (const auto& [metrics, counts] : totals) {
    for (std::size_t index = 0; index < kAllConnectionStates.size(); ++index) {
      metrics->set_connections(to_string(kAllConnectionStates[index]), counts[index]);
    }
  }
}

}  // namespace pgvigil::pool
