#pragma once
// Reading a running pgvigil's /metrics page from its admin port, for tests that assert on what
// pgvigil itself exports.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "tests/support/prometheus_text.hpp"

namespace pgvigil::testing {

// The page's text; "" when the admin port does not answer 200 within 2 s (not started yet, or
// already stopped), so callers can poll it with wait_until.
std::string metrics_page(std::uint16_t admin_port);

// One series' value (summed when labels leave several matching); nullopt when absent or the page
// cannot be fetched.
std::optional<double> metric(std::uint16_t admin_port, std::string_view name,
                             const Labels& labels = {});

}  // namespace pgvigil::testing
