#pragma once
// What /readyz reports: whether the daemon should receive traffic, and why (or why not).

#include <string>

namespace pgvigil::metrics {

struct ReadyState {
  bool ready = false;
  // Short human-readable lines, e.g. one per pool: "pool app: 2 idle healthy".
  std::string detail;
};

}  // namespace pgvigil::metrics
