// The /metrics parser used by end-to-end tests, on a page shaped like prometheus-cpp's output.

#include "tests/support/prometheus_text.hpp"

#include <gtest/gtest.h>

#include <cmath>

namespace pgvigil::testing {
namespace {

constexpr const char* kPage = R"(# HELP pgvigil_evictions_total Server connections evicted.
# TYPE pgvigil_evictions_total counter
pgvigil_evictions_total{pool="app",reason="server_closed"} 3
pgvigil_evictions_total{pool="app",reason="ping_timeout"} 2
pgvigil_evictions_total{pool="other",reason="server_closed"} 5

# TYPE pgvigil_ping_seconds histogram
pgvigil_ping_seconds_bucket{pool="app",le="0.005"} 1
pgvigil_ping_seconds_bucket{pool="app",le="+Inf"} 4 1700000000000
pgvigil_ping_seconds_sum{pool="app"} 0.25
pgvigil_ping_seconds_count{pool="app"} 4
pgvigil_build_info{version="0.1.0",note="say \"hi\"\\n\n",} 1
pgvigil_up NaN
pgvigil_limit +Inf
)";

TEST(PrometheusTextTest, ParsesSamplesLabelsAndEscapes) {
  const auto samples = parse_prometheus_text(kPage);
  ASSERT_EQ(samples.size(), 10u);
  EXPECT_EQ(samples[0].name, "pgvigil_evictions_total");
  EXPECT_EQ(samples[0].labels, (Labels{{"pool", "app"}, {"reason", "server_closed"}}));
  EXPECT_EQ(samples[4].labels.at("le"), "+Inf");
  EXPECT_EQ(samples[4].value, 4);  // the timestamp is not the value
  EXPECT_EQ(samples[7].labels.at("note"), "say \"hi\"\\n\n");
  EXPECT_TRUE(std::isnan(samples[8].value));
  EXPECT_TRUE(std::isinf(samples[9].value));
}

TEST(PrometheusTextTest, SampleValueMatchesGivenLabelsAndSums) {
  EXPECT_EQ(sample_value(kPage, "pgvigil_evictions_total",
                         {{"pool", "app"}, {"reason", "server_closed"}}),
            3);
  EXPECT_EQ(sample_value(kPage, "pgvigil_evictions_total", {{"pool", "app"}}), 5);
  EXPECT_EQ(sample_value(kPage, "pgvigil_evictions_total"), 10);
  EXPECT_EQ(sample_value(kPage, "pgvigil_ping_seconds_count", {{"pool", "app"}}), 4);
  EXPECT_EQ(sample_value(kPage, "pgvigil_evictions_total", {{"pool", "nope"}}), std::nullopt);
  EXPECT_EQ(sample_value(kPage, "pgvigil_evictions", {}), std::nullopt);  // no prefix matching
  EXPECT_EQ(sample_value(kPage, "pgvigil_up", {{"pool", "app"}}), std::nullopt);
}

TEST(PrometheusTextTest, RejectsMalformedLines) {
  EXPECT_THROW(parse_prometheus_text("m{a=\"x\" 1\n"), std::invalid_argument);
  EXPECT_THROW(parse_prometheus_text("m{a=x} 1\n"), std::invalid_argument);
  EXPECT_THROW(parse_prometheus_text("m one\n"), std::invalid_argument);
  EXPECT_THROW(parse_prometheus_text("m\n"), std::invalid_argument);
  EXPECT_THROW(parse_prometheus_text("m 1 2 3\n"), std::invalid_argument);
  EXPECT_THROW(parse_prometheus_text("m{a=\"1\",a=\"2\"} 1\n"), std::invalid_argument);
  EXPECT_TRUE(parse_prometheus_text("# only a comment\n\n").empty());
}

}  // namespace
}  // namespace pgvigil::testing
