#pragma once
// Per-socket TCP keep-alive, as applied to every server connection.

#include <chrono>

namespace pgvigil::probes {

struct KeepaliveSettings {
  std::chrono::seconds idle{5};       // TCP_KEEPIDLE: quiet time before the first probe
  std::chrono::seconds interval{2};   // TCP_KEEPINTVL: time between probes
  int count = 3;                      // TCP_KEEPCNT: unanswered probes before the kernel gives up
  std::chrono::milliseconds user_timeout{11000};  // TCP_USER_TIMEOUT: max unacknowledged time

  // The worst case for an idle connection whose path goes silent.
  std::chrono::milliseconds idle_detection_bound() const { return idle + interval * count; }

  friend bool operator==(const KeepaliveSettings&, const KeepaliveSettings&) = default;
};

}  // namespace pgvigil::probes
