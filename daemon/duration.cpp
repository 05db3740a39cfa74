#include "daemon/duration.hpp"

#include <array>
#include <charconv>
#include <cstdint>
#include <limits>
#include <stdexcept>

namespace pgvigil::daemon {
namespace {

struct Unit {
  std::string_view suffix;
  std::int64_t milliseconds;
};

// Largest first, so format_duration picks the coarsest exact unit.
constexpr std::array<Unit, 4> kUnits{{{"h", 3'600'000}, {"m", 60'000}, {"s", 1'000}, {"ms", 1}}};

[[noreturn]] void reject(std::string_view text, std::string_view why) {
  throw std::invalid_argument("invalid duration '" + std::string(text) + "': " + std::string(why) +
                              " (write an integer with a unit: ms, s, m or h, e.g. 500ms, 10s, "
                              "30m, 2h; or 0)");
}

}  // namespace

std::chrono::milliseconds parse_duration(std::string_view text) {
  if (text == "0") return std::chrono::milliseconds{0};
  if (text.empty()) reject(text, "empty");
  if (text.front() == '-') reject(text, "must not be negative");

  std::int64_t count = 0;
  const char* const end = text.data() + text.size();
  const auto [unit_begin, error] = std::from_chars(text.data(), end, count);
  if (error == std::errc::result_out_of_range) reject(text, "too large");
  if (error != std::errc{}) reject(text, "does not start with a number");

  const std::string_view suffix(unit_begin, static_cast<std::size_t>(end - unit_begin));
  if (suffix.empty()) reject(text, "missing unit");
  if (suffix.front() == '.') reject(text, "fractions are not supported, use a smaller unit");
  for (const Unit& unit : kUnits) {
    if (suffix != unit.suffix) continue;
    if (count > std::numeric_limits<std::int64_t>::max() / unit.milliseconds) {
      reject(text, "too large");
    }
    return std::chrono::milliseconds{count * unit.milliseconds};
  }
  reject(text, "unknown unit '" + std::string(suffix) + "'");
}

std::string format_duration(std::chrono::milliseconds duration) {
  const std::int64_t count = duration.count();
  if (count == 0) return "0";
  for (const Unit& unit : kUnits) {
    if (count % unit.milliseconds == 0) {
      return std::to_string(count / unit.milliseconds) + std::string(unit.suffix);
    }
  }
  return std::to_string(count) + "ms";  // unreachable: every count divides by 1ms
}

}  // namespace pgvigil::daemon
