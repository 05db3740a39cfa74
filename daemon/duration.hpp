#pragma once
// Durations as written in config.yaml and logs: an integer and a unit (500ms, 10s, 30m, 2h), or 0.

#include <chrono>
#include <string>
#include <string_view>

namespace pgvigil::daemon {

// Parses "500ms", "10s", "30m", "2h" or "0". A bare number other than 0, a fraction, a negative
// value, an unknown unit or an overflow throws std::invalid_argument naming the accepted units.
std::chrono::milliseconds parse_duration(std::string_view text);

// The shortest exact spelling in the largest unit that divides it ("1500ms", "30s", "2h", "0");
// parse_duration(format_duration(d)) == d for every d >= 0.
std::string format_duration(std::chrono::milliseconds duration);

}  // namespace pgvigil::daemon
