#pragma once
// Lets a message that can repeat in a loop (a server that stays down) through once per period,
// and counts what it held back so the next line can say so.

#include <chrono>

namespace pgvigil::pool {

class LogThrottle {
 public:
  using Clock = std::chrono::steady_clock;
  explicit LogThrottle(Clock::duration period) : period_(period) {}

  // True when a line may be written now; then suppressed() tells how many were held back.
  bool allow(Clock::time_point now = Clock::now()) {
    if (now - last_ < period_ && last_ != Clock::time_point{}) {
      ++held_back_;
      return false;
    }
    last_ = now;
    suppressed_ = held_back_;
    held_back_ = 0;
    return true;
  }
  int suppressed() const { return suppressed_; }
  void reset() { last_ = {}; held_back_ = suppressed_ = 0; }

 private:
  Clock::duration period_;
  Clock::time_point last_{};
  int held_back_ = 0;
  int suppressed_ = 0;
};

}  // namespace pgvigil::pool
