#pragma once
// Application-level ping of idle server connections.

#include <chrono>
#include <string>

namespace pgvigil::probes {

struct PingSettings {
  std::chrono::milliseconds interval{5000};  // time since the last sign of life before a ping
  std::chrono::milliseconds timeout{1000};   // a ping unanswered this long evicts the connection
  double jitter = 0.1;  // pings come early by up to this share of interval (never late), spread out
  std::string query;  // empty: the empty query (cheapest); else SQL such as a recovery check

  friend bool operator==(const PingSettings&, const PingSettings&) = default;
};

}  // namespace pgvigil::probes
