#pragma once
// Reading the daemon's /metrics page in tests: Prometheus text exposition format 0.0.4.
// Strict on purpose: a malformed line is a bug in what we serve, so it throws rather than being
// skipped.

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgvigil::testing {

using Labels = std::map<std::string, std::string>;

struct PrometheusSample {
  std::string name;  // with any _bucket/_sum/_count/_total suffix, as printed
  Labels labels;     // values unescaped (\\, \" and \n)
  double value = 0;  // +Inf, -Inf and NaN are accepted
};

// Every sample line, in page order; # HELP / # TYPE / comments and blank lines are skipped. The
// optional trailing timestamp is ignored. Throws std::invalid_argument naming the line number.
std::vector<PrometheusSample> parse_prometheus_text(std::string_view text);

// The value of the series called name whose labels include every given label with the given
// value; labels not given are not compared. When several series match (e.g. only {"pool","app"}
// given for a counter also labelled by reason), their values are summed. nullopt when none
// matches. Example:
//   sample_value(page, "pgvigil_evictions_total", {{"pool", "app"}, {"reason", "server_closed"}})
std::optional<double> sample_value(std::string_view text, std::string_view name,
                                   const Labels& labels = {});
std::optional<double> sample_value(const std::vector<PrometheusSample>& samples,
                                   std::string_view name, const Labels& labels = {});

}  // namespace pgvigil::testing
