#pragma once
// Checkout waits counted on the pool's own thread and handed to the checkout-wait histogram in
// batches. Every transaction checks out a connection, and a histogram observation takes the
// series' lock and the histogram's mutex, which the shards of a database share: counted here,
// the relay's path touches no shared cache line.

#include <chrono>
#include <cstdint>
#include <vector>

#include "metrics/registry.hpp"

namespace pgvigil::pool {

class CheckoutWaitTally {
 public:
  CheckoutWaitTally();

  void add(std::chrono::steady_clock::duration wait);
  // Hands what was counted to `metrics` (one ObserveMultiple) and starts again from zero.
  void publish_to(metrics::PoolMetrics& metrics);

 private:
  // Per bucket of metrics::buckets::kCheckoutWait, then +Inf: not cumulative, as
  // prometheus::Histogram::ObserveMultiple takes them.
  std::vector<double> bucket_increments_;
  double sum_seconds_ = 0;
  std::uint64_t count_ = 0;
};

}  // namespace pgvigil::pool
