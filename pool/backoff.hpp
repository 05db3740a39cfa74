#pragma once
// Reconnection back-off: exponential with jitter, so a pool does not hammer a server that is down
// and pools that lost the server together do not come back as a herd.

#include <chrono>
#include <random>

#include "pool/pool_settings.hpp"

namespace pgvigil::pool {

class Backoff {
 public:
  explicit Backoff(ReconnectSettings settings, std::uint64_t seed = std::random_device{}());

  // The delay before the next attempt after one more failure. The nominal delay doubles from
  // initial_delay up to the cap; the result is drawn from [nominal/2, nominal] ("equal jitter").
  // While clients wait, the cap is max_delay_while_clients_wait instead of max_delay.
  Milliseconds next_delay(bool clients_waiting);

  void reset() { failures_ = 0; }
  int failures() const { return failures_; }
  void update(ReconnectSettings settings) { settings_ = settings; }

 private:
  ReconnectSettings settings_;
  int failures_ = 0;
  std::mt19937_64 random_;
};

}  // namespace pgvigil::pool
