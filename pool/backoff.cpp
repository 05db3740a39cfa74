#include "pool/backoff.hpp"

#include <algorithm>

namespace pgvigil::pool {

Backoff::Backoff(ReconnectSettings settings, std::uint64_t seed)
    : settings_(settings), random_(seed) {}

Milliseconds Backoff::next_delay(bool clients_waiting) {
  const auto cap = clients_waiting
                       ? std::min(settings_.max_delay, settings_.max_delay_while_clients_wait)
                       : settings_.max_delay;
  // Doubling stops once past the cap, so the shift never overflows.
  auto nominal = settings_.initial_delay;
  for (int i = 0; i < failures_ && nominal < cap; ++i) nominal *= 2;
  nominal = std::min(nominal, cap);
  ++failures_;
  std::uniform_int_distribution<Milliseconds::rep> spread(nominal.count() / 2, nominal.count());
  return Milliseconds(spread(random_));
}

}  // namespace pgvigil::pool
