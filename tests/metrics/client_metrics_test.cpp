// Registry::add_client_pool: client-side children exist at 0 from the start, counts land on
// their labels, SQLSTATE classes come from a closed set, and the series go away with the pool.

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "metrics/client_series.hpp"
#include "metrics/proxy_metrics.hpp"
#include "metrics/registry.hpp"
#include "tests/support/contains.hpp"

namespace pgvigil::metrics {
namespace {

using testing::contains;

TEST(ClientMetrics, NoPoolFamilyShowsBeforeAnyClientPool) {
  const Registry registry("test");
  const std::string page = registry.serialize();
  for (const char* family : {"pgvigil_client_connections", "pgvigil_client_errors_total",
                             "pgvigil_transactions_total", "pgvigil_queries_total",
                             "pgvigil_relayed_bytes_total"}) {
    EXPECT_FALSE(contains(page, family)) << family << "\n" << page;
  }
  // Errors before a client reaches any pool have a family of their own, there from the start.
  EXPECT_TRUE(contains(page, "pgvigil_client_startup_errors_total{class=\"3D\"} 0\n")) << page;
}

TEST(ClientMetrics, AddClientPoolCreatesEveryChildAtZero) {
  Registry registry("test");
  registry.add_client_pool("app");
  const std::string page = registry.serialize();
  for (const char* line : {
           "# TYPE pgvigil_client_connections gauge\n",
           "# TYPE pgvigil_client_errors_total counter\n",
           "# TYPE pgvigil_transactions_total counter\n",
           "# TYPE pgvigil_queries_total counter\n",
           "# TYPE pgvigil_relayed_bytes_total counter\n",
           "pgvigil_client_connections{pool=\"app\"} 0\n",
           "pgvigil_client_errors_total{class=\"08\",pool=\"app\"} 0\n",
           "pgvigil_client_errors_total{class=\"0A\",pool=\"app\"} 0\n",
           "pgvigil_client_errors_total{class=\"28\",pool=\"app\"} 0\n",
           "pgvigil_client_errors_total{class=\"3D\",pool=\"app\"} 0\n",
           "pgvigil_client_errors_total{class=\"53\",pool=\"app\"} 0\n",
           "pgvigil_client_errors_total{class=\"57\",pool=\"app\"} 0\n",
           "pgvigil_client_errors_total{class=\"XX\",pool=\"app\"} 0\n",
           "pgvigil_client_errors_total{class=\"other\",pool=\"app\"} 0\n",
           "pgvigil_transactions_total{pool=\"app\"} 0\n",
           "pgvigil_queries_total{pool=\"app\"} 0\n",
           "pgvigil_relayed_bytes_total{direction=\"to_server\",pool=\"app\"} 0\n",
           "pgvigil_relayed_bytes_total{direction=\"to_client\",pool=\"app\"} 0\n",
       }) {
    EXPECT_TRUE(contains(page, line)) << line << "\n" << page;
  }
}

TEST(ClientMetrics, CountsLandOnTheirLabels) {
  Registry registry("test");
  const auto app = registry.add_client_pool("app");
  const auto reports = registry.add_client_pool("reports");
  app->client_connected();
  app->client_connected();
  app->client_connected();
  app->client_disconnected();
  app->client_error("28P01");
  app->client_error("28000");
  app->client_error("53300");
  app->client_error("0A000");
  app->client_error("3D000");
  app->relayed({.bytes_to_server = 1000, .bytes_to_client = 0, .queries = 12, .transactions = 5});
  app->relayed({.bytes_to_server = 0, .bytes_to_client = 250000, .queries = 3, .transactions = 0});
  reports->client_connected();
  reports->client_error("57P01");

  const std::string page = registry.serialize();
  for (const char* line : {
           "pgvigil_client_connections{pool=\"app\"} 2\n",
           "pgvigil_client_errors_total{class=\"28\",pool=\"app\"} 2\n",
           "pgvigil_client_errors_total{class=\"53\",pool=\"app\"} 1\n",
           "pgvigil_client_errors_total{class=\"0A\",pool=\"app\"} 1\n",
           "pgvigil_client_errors_total{class=\"3D\",pool=\"app\"} 1\n",
           "pgvigil_client_errors_total{class=\"57\",pool=\"app\"} 0\n",
           "pgvigil_client_errors_total{class=\"other\",pool=\"app\"} 0\n",
           "pgvigil_transactions_total{pool=\"app\"} 5\n",
           "pgvigil_queries_total{pool=\"app\"} 15\n",
           "pgvigil_relayed_bytes_total{direction=\"to_server\",pool=\"app\"} 1000\n",
           "pgvigil_relayed_bytes_total{direction=\"to_client\",pool=\"app\"} 250000\n",
           "pgvigil_client_connections{pool=\"reports\"} 1\n",
           "pgvigil_client_errors_total{class=\"57\",pool=\"reports\"} 1\n",
           "pgvigil_client_errors_total{class=\"28\",pool=\"reports\"} 0\n",
           "pgvigil_transactions_total{pool=\"reports\"} 0\n",
       }) {
    EXPECT_TRUE(contains(page, line)) << line << "\n" << page;
  }
}

TEST(ClientMetrics, UnknownSqlstateClassesCountAsOther) {
  Registry registry("test");
  const auto app = registry.add_client_pool("app");
  const std::string before = registry.serialize();
  app->client_error("42P01");  // A known SQLSTATE, but not a class in the set.
  app->client_error("22012");
  app->client_error("P0001");
  app->client_error("X");  // Malformed: too short.
  app->client_error("");
  const std::string page = registry.serialize();
  EXPECT_TRUE(contains(page, "pgvigil_client_errors_total{class=\"other\",pool=\"app\"} 5\n"))
      << page;
  EXPECT_FALSE(contains(page, "class=\"42\"")) << page;
  EXPECT_FALSE(contains(page, "class=\"P0\"")) << page;
  // No new series: only the "other" line changed.
  EXPECT_EQ(std::count(before.begin(), before.end(), '\n'),
            std::count(page.begin(), page.end(), '\n'));
}

TEST(ClientMetrics, LowerCaseSqlstateKeepsItsClass) {
  Registry registry("test");
  registry.add_client_pool("app")->client_error("0a000");
  EXPECT_TRUE(
      contains(registry.serialize(), "pgvigil_client_errors_total{class=\"0A\",pool=\"app\"} 1\n"));
}

TEST(ClientMetrics, AddingAClientPoolAgainReturnsTheSameSeries) {
  Registry registry("test");
  const auto first = registry.add_client_pool("app");
  first->relayed({.queries = 4});
  const auto second = registry.add_client_pool("app");
  EXPECT_EQ(first, second);
  EXPECT_TRUE(contains(registry.serialize(), "pgvigil_queries_total{pool=\"app\"} 4\n"));
}

TEST(ClientMetrics, RemovePoolRemovesClientSeriesToo) {
  Registry registry("test");
  const auto app = registry.add_client_pool("app");
  registry.add_pool("app", PoolLabelSets{.eviction_reasons = {},
                                         .connect_failure_causes = {},
                                         .connection_states = {"idle"},
                                         .servers = {}});
  registry.add_client_pool("reports");
  registry.remove_pool("app");
  // A handle still held must be harmless and must not bring series back.
  app->client_connected();
  app->client_disconnected();
  app->client_error("28P01");
  app->relayed({.bytes_to_server = 1, .bytes_to_client = 1, .queries = 1, .transactions = 1});

  const std::string page = registry.serialize();
  EXPECT_FALSE(contains(page, "pool=\"app\"")) << page;
  EXPECT_TRUE(contains(page, "pgvigil_client_connections{pool=\"reports\"} 0\n")) << page;
  EXPECT_TRUE(contains(page, "pgvigil_client_errors_total{class=\"other\",pool=\"reports\"} 0\n"))
      << page;
}

TEST(ClientMetrics, RemovePoolWithOnlyClientSeries) {
  Registry registry("test");
  registry.add_client_pool("app");
  registry.remove_pool("app");
  EXPECT_FALSE(contains(registry.serialize(), "pool=\"app\""));
}

TEST(ClientMetrics, ReAddingARemovedPoolStartsFromZero) {
  Registry registry("test");
  registry.add_client_pool("app")->relayed({.transactions = 7});
  registry.remove_pool("app");
  const auto again = registry.add_client_pool("app");
  EXPECT_TRUE(contains(registry.serialize(), "pgvigil_transactions_total{pool=\"app\"} 0\n"));
  again->relayed({.transactions = 1});
  EXPECT_TRUE(contains(registry.serialize(), "pgvigil_transactions_total{pool=\"app\"} 1\n"));
}

// The pin causes the tests below give their pools, so that the pinned gauges exist too.
constexpr std::array<std::string_view, 2> kPinCauses{"listen", "temporary_table"};

// Calls every recording method of `metrics`, so that a handle that still wrote would change each
// of its series.
void touch_every_series(ClientMetrics& metrics) {
  metrics.client_connected();
  for (const auto cause : kPinCauses) metrics.client_pinned(cause, 1);
  for (const auto error_class : ClientSeries::kErrorClasses) {
    metrics.client_error(std::string(error_class) + "000");
  }
  metrics.client_error("42P01");  // "other"
  metrics.relayed({.bytes_to_server = 7, .bytes_to_client = 7, .queries = 7, .transactions = 7});
}

// A detached handle must write nowhere: its children are freed. Such a write would happen inside
// libprometheus-cpp-core, which AddressSanitizer does not instrument (and its quarantine keeps
// freed memory from being reused), so these tests make the write visible in a plain build
// instead: right after the old children are freed, the same pool (or a whole registry) is built
// again, its children have the same sizes, and the heap hands them the freed addresses. A stale
// handle that still wrote would change the new page. Checked: without the detached_ checks in
// ClientSeries, or without the detach in ~Registry, these fail.
TEST(ClientMetrics, ARemovedPoolsHandleLeavesThePoolAddedAgainAlone) {
  Registry registry("test");
  const auto stale = registry.add_client_pool("app", kPinCauses);
  registry.remove_pool("app");
  registry.add_client_pool("app", kPinCauses);
  const std::string before = registry.serialize();
  touch_every_series(*stale);
  EXPECT_EQ(registry.serialize(), before);
}

TEST(ClientMetrics, HandlesThatOutliveTheRegistryLeaveTheNextOneAlone) {
  std::shared_ptr<ClientMetrics> stale;
  {
    Registry registry("test");
    stale = registry.add_client_pool("app", kPinCauses);
  }
  Registry next("test");
  next.add_client_pool("app", kPinCauses);
  const std::string before = next.serialize();
  touch_every_series(*stale);
  EXPECT_EQ(next.serialize(), before);
}

TEST(ClientMetrics, ConcurrentUseIsSafe) {
  Registry registry("test");
  const auto app = registry.add_client_pool("app");
  constexpr int kPerThread = 2000;
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        app->relayed({.queries = 1});
        app->client_error("08006");
      }
    });
  }
  threads.emplace_back([&] {
    for (int i = 0; i < 200; ++i) {
      registry.add_client_pool("churn")->client_connected();
      registry.remove_pool("churn");
    }
  });
  threads.emplace_back([&] {
    for (int i = 0; i < 50; ++i) (void)registry.serialize();
  });
  for (auto& thread : threads) thread.join();
  const std::string page = registry.serialize();
  EXPECT_TRUE(contains(
      page, "pgvigil_queries_total{pool=\"app\"} " + std::to_string(3 * kPerThread) + "\n"))
      << page;
  EXPECT_TRUE(contains(page, "pgvigil_client_errors_total{class=\"08\",pool=\"app\"} " +
                                 std::to_string(3 * kPerThread) + "\n"))
      << page;
}

}  // namespace
}  // namespace pgvigil::metrics
