#pragma once
// What the files of Pool share beyond pool.hpp: the waiter record, the watch delay and the
// words a stopping pool gives. Included by pool*.cpp only.

#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include "pool/pool.hpp"

namespace pgvigil::pool {

// A connection a client gives back is usually lent again within microseconds. Watching it at
// once would cost a coroutine, a timer and an epoll re-arm per transaction, so a watcher starts
// only once it has stayed idle for kWatchDelay; until then the check at checkout covers it.
inline constexpr auto kWatchDelay = std::chrono::milliseconds(20);
// A shard gives a sibling the place of an idle connection only once it has stayed idle this long
// (unless it holds more than its share and the sibling less): under load a connection given
// back is taken again within microseconds (within milliseconds on a loaded machine), and giving
// up each briefly idle one would only churn server connections between busy shards. A sibling
// refused for that asks again after this long.
inline constexpr auto kLendAfterIdle = std::chrono::milliseconds(10);

// Checkout waits reach their histogram in batches (see Pool::metrics_publish_).
inline constexpr auto kMetricsPublishPeriod = std::chrono::milliseconds(10);

inline std::string stop_detail(EvictionReason reason) {
  return reason == EvictionReason::reload ? "the database was removed from the configuration"
                                          : "pgvigil is stopping";
}

struct Pool::Waiter {
  Clock::time_point deadline;
  Lease granted;
  bool done = false;  // granted, timed out or woken by a stopping pool
  // How Pool::wake wakes it, once. A coroutine checkout waits on its own timer, which expires
  // at the deadline and is cancelled to wake it early.
  std::optional<boost::asio::steady_timer> timer;
  // A callback waiter (wait_for_connection) has its completion posted.
  std::function<void(CheckoutResult)> on_checkout;
  Clock::time_point started;
  Milliseconds timeout{};
};

}  // namespace pgvigil::pool
