#include "tests/support/admin_metrics.hpp"

#include <chrono>
#include <exception>

#include "tests/metrics/http_client.hpp"

namespace pgvigil::testing {

std::string metrics_page(std::uint16_t admin_port) {
  try {
    const auto result =
        test::http_get("127.0.0.1", admin_port, "/metrics", std::chrono::seconds(2));
    return result.status == 200 ? result.body : "";
  } catch (const std::exception&) {
    return "";
  }
}

std::optional<double> metric(std::uint16_t admin_port, std::string_view name,
                             const Labels& labels) {
  return sample_value(metrics_page(admin_port), name, labels);
}

}  // namespace pgvigil::testing
