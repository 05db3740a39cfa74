#pragma once
// The bounds the fault tests assert, written once so the tests and their printed numbers agree.

#include <algorithm>
#include <cmath>
#include <chrono>

#include "tests/faults/daemon_under_test.hpp"

namespace pgvigil::testing {

// Slack on top of every bound, in seconds: scheduling on a loaded 2-core machine and the tests'
// 50 ms polling.
constexpr double kSlack = 2.0;

// When Linux ends an idle connection whose peer went silent, counted from the last ACK heard
// (tcp_keepalive_timer, net/ipv4/tcp_timer.c). Probes go out at idle, idle + interval, ...
// Without TCP_USER_TIMEOUT the connection dies when `count` probes are unanswered: idle +
// interval * count. With it, count is ignored: the first probe tick at which nothing was heard
// for user_timeout ends it (never before the first probe was sent), so user_timeout above
// idle + interval * count lengthens detection, below it shortens it. Rounded up to a tick.
inline Seconds kernel_keepalive_death(const DaemonSettings& s) {
  const double idle = static_cast<double>(s.keepalive_idle.count());
  const double interval = static_cast<double>(s.keepalive_interval.count());
  if (s.user_timeout.count() == 0) return Seconds(idle + interval * s.keepalive_count);
  const double user_timeout = static_cast<double>(s.user_timeout.count()) / 1000;
  double ticks = std::ceil((user_timeout - idle) / interval);
  ticks = std::max(ticks, 1.0);
  return Seconds(idle + interval * ticks);
}

// An idle connection is pinged at the latest ping.interval after it was last heard from (jitter
// only brings pings earlier) and evicted when the answer is ping.timeout late.
inline Seconds ping_death(const DaemonSettings& s) {
  return std::chrono::duration_cast<Seconds>(s.ping_interval + s.ping_timeout);
}

}  // namespace pgvigil::testing
