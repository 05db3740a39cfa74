// Registry: families exist from the start, pool children come from closed label sets and go
// away with their pool.

#include "metrics/registry.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "metrics/buckets.hpp"
#include "tests/support/contains.hpp"

namespace pgvigil::metrics {
namespace {

using namespace std::chrono_literals;

PoolLabelSets app_labels() {
  return PoolLabelSets{
      .eviction_reasons = {"ping_timeout", "server_closed"},
      .connect_failure_causes = {"refused", "auth"},
      .connection_states = {"idle", "checked_out"},
      .servers = {"db1:5432"},
  };
}

using testing::contains;

// prometheus-cpp leaves a family without children out of the page, so before any pool only
// the global series show.
TEST(Registry, GlobalSeriesExistFromTheStart) {
  const Registry registry("1.2.3");
  const std::string page = registry.serialize();
  EXPECT_TRUE(contains(page, "pgvigil_build_info{version=\"1.2.3\"} 1\n")) << page;
  EXPECT_TRUE(contains(page, "pgvigil_config_reloads_total{result=\"success\"} 0\n")) << page;
  EXPECT_TRUE(contains(page, "pgvigil_config_reloads_total{result=\"error\"} 0\n")) << page;
}

TEST(Registry, StartupErrorsCountByClassFromZero) {
  Registry registry("test");
  const auto series = [](const char* error_class, int count) {
    return std::string("pgvigil_client_startup_errors_total{class=\"") + error_class + "\"} " +
           std::to_string(count) + "\n";
  };
  const std::string before = registry.serialize();
  for (const char* error_class : {"08", "0A", "28", "3D", "53", "57", "XX", "other"}) {
    EXPECT_TRUE(contains(before, series(error_class, 0))) << error_class << "\n" << before;
  }
  registry.startup_error("3D000");
  registry.startup_error("53300");
  registry.startup_error("53300");
  registry.startup_error("22P02");  // not a class of its own
  const std::string after = registry.serialize();
  for (const auto& expected :
       {series("3D", 1), series("53", 2), series("other", 1), series("08", 0)}) {
    EXPECT_TRUE(contains(after, expected)) << expected << after;
  }
}

TEST(Registry, AddPoolCreatesEveryFamilyAndChildAtZero) {
  Registry registry("test");
  registry.add_pool("app", app_labels());
  const std::string page = registry.serialize();
  for (const char* type_line : {
           "# TYPE pgvigil_evictions_total counter",
           "# TYPE pgvigil_detection_latency_seconds histogram",
           "# TYPE pgvigil_ping_latency_seconds histogram",
           "# TYPE pgvigil_connect_latency_seconds histogram",
           "# TYPE pgvigil_connect_failures_total counter",
           "# TYPE pgvigil_server_connections gauge",
           "# TYPE pgvigil_keepalive_mismatches_total counter",
           "# TYPE pgvigil_server_rtt_seconds gauge",
           "# TYPE pgvigil_checkout_wait_seconds histogram",
           "# TYPE pgvigil_checkout_timeouts_total counter",
           "# TYPE pgvigil_config_reloads_total counter",
           "# TYPE pgvigil_build_info gauge",
       }) {
    EXPECT_TRUE(contains(page, type_line)) << type_line << "\n" << page;
  }
  for (const char* series : {
           "pgvigil_evictions_total{pool=\"app\",reason=\"ping_timeout\",server=\"db1:5432\"} 0\n",
           "pgvigil_evictions_total{pool=\"app\",reason=\"server_closed\",server=\"db1:5432\"} 0\n",
           "pgvigil_detection_latency_seconds_count{pool=\"app\",reason=\"ping_timeout\",server="
           "\"db1:5432\"} 0\n",
           "pgvigil_detection_latency_seconds_bucket{pool=\"app\",reason=\"server_closed\",server="
           "\"db1:5432\","
           "le=\"300\"} 0\n",
           "pgvigil_detection_latency_seconds_bucket{pool=\"app\",reason=\"server_closed\",server="
           "\"db1:5432\","
           "le=\"0.01\"} 0\n",
           "pgvigil_ping_latency_seconds_bucket{pool=\"app\",server=\"db1:5432\",le=\"0.0001\"} "
           "0\n",
           "pgvigil_ping_latency_seconds_bucket{pool=\"app\",server=\"db1:5432\",le=\"5\"} 0\n",
           "pgvigil_connect_latency_seconds_bucket{pool=\"app\",server=\"db1:5432\",le=\"0.001\"} "
           "0\n",
           "pgvigil_connect_latency_seconds_bucket{pool=\"app\",server=\"db1:5432\",le=\"10\"} 0\n",
           "pgvigil_connect_failures_total{cause=\"refused\",pool=\"app\",server=\"db1:5432\"} 0\n",
           "pgvigil_connect_failures_total{cause=\"auth\",pool=\"app\",server=\"db1:5432\"} 0\n",
           "pgvigil_server_connections{pool=\"app\",state=\"idle\"} 0\n",
           "pgvigil_server_connections{pool=\"app\",state=\"checked_out\"} 0\n",
           "pgvigil_keepalive_mismatches_total{pool=\"app\",server=\"db1:5432\"} 0\n",
           "pgvigil_server_rtt_seconds{pool=\"app\",server=\"db1:5432\"} 0\n",
           "pgvigil_checkout_wait_seconds_bucket{pool=\"app\",le=\"30\"} 0\n",
           "pgvigil_checkout_timeouts_total{pool=\"app\"} 0\n",
       }) {
    EXPECT_TRUE(contains(page, series)) << series << "\n" << page;
  }
}

TEST(Registry, RecordsLandInTheirChildren) {
  Registry registry("test");
  const auto pool = registry.add_pool("app", app_labels());
  pool->record_eviction("db1:5432", "ping_timeout", 2.5s);
  pool->observe_ping("db1:5432", 300us);
  pool->observe_connect("db1:5432", 20ms);
  pool->record_connect_failure("db1:5432", "refused");
  pool->set_connections("idle", 3);
  pool->record_keepalive_mismatch("db1:5432");
  pool->observe_server_rtt("db1:5432", 1500us);
  std::vector<double> checkout_waits(buckets::kCheckoutWait.size() + 1, 0.0);
  checkout_waits[4] = 1;  // one wait of 2 ms (le="0.0025")
  pool->observe_checkout_waits(checkout_waits, 0.002);
  pool->record_checkout_timeout();
  registry.record_config_reload(true);
  registry.record_config_reload(false);
  registry.record_config_reload(false);

  const std::string page = registry.serialize();
  for (const char* series : {
           "pgvigil_evictions_total{pool=\"app\",reason=\"ping_timeout\",server=\"db1:5432\"} 1\n",
           "pgvigil_evictions_total{pool=\"app\",reason=\"server_closed\",server=\"db1:5432\"} 0\n",
           "pgvigil_detection_latency_seconds_bucket{pool=\"app\",reason=\"ping_timeout\",server="
           "\"db1:5432\","
           "le=\"2\"} 0\n",
           "pgvigil_detection_latency_seconds_bucket{pool=\"app\",reason=\"ping_timeout\",server="
           "\"db1:5432\","
           "le=\"3\"} 1\n",
           "pgvigil_detection_latency_seconds_sum{pool=\"app\",reason=\"ping_timeout\",server="
           "\"db1:5432\"} 2.5\n",
           "pgvigil_ping_latency_seconds_count{pool=\"app\",server=\"db1:5432\"} 1\n",
           "pgvigil_connect_latency_seconds_count{pool=\"app\",server=\"db1:5432\"} 1\n",
           "pgvigil_connect_failures_total{cause=\"refused\",pool=\"app\",server=\"db1:5432\"} 1\n",
           "pgvigil_server_connections{pool=\"app\",state=\"idle\"} 3\n",
           "pgvigil_keepalive_mismatches_total{pool=\"app\",server=\"db1:5432\"} 1\n",
           "pgvigil_server_rtt_seconds{pool=\"app\",server=\"db1:5432\"} 0.0015\n",
           "pgvigil_checkout_wait_seconds_bucket{pool=\"app\",le=\"0.001\"} 0\n",
           "pgvigil_checkout_wait_seconds_bucket{pool=\"app\",le=\"0.0025\"} 1\n",
           "pgvigil_checkout_wait_seconds_sum{pool=\"app\"} 0.002\n",
           "pgvigil_checkout_wait_seconds_count{pool=\"app\"} 1\n",
           "pgvigil_checkout_timeouts_total{pool=\"app\"} 1\n",
           "pgvigil_config_reloads_total{result=\"success\"} 1\n",
           "pgvigil_config_reloads_total{result=\"error\"} 2\n",
       }) {
    EXPECT_TRUE(contains(page, series)) << series << "\n" << page;
  }
}

TEST(Registry, WorkerSeriesFollowTheListenersCounts) {
  Registry registry("test");
  registry.set_worker(1, {0.25, 7, 1});  // worker 0's series are made too, at 0
  registry.set_worker(1, {0.5, 10, 1});  // running totals: the counter moves by 3, the other not
  const std::string page = registry.serialize();
  for (const char* series : {
           "pgvigil_worker_busy_ratio{worker=\"0\"} 0\n",
           "pgvigil_worker_busy_ratio{worker=\"1\"} 0.5\n",
           "pgvigil_worker_clients_accepted_total{worker=\"0\"} 0\n",
           "pgvigil_worker_clients_accepted_total{worker=\"1\"} 10\n",
           "pgvigil_worker_sessions_moved_in_total{worker=\"0\"} 0\n",
           "pgvigil_worker_sessions_moved_in_total{worker=\"1\"} 1\n",
       }) {
    EXPECT_TRUE(contains(page, series)) << series << "\n" << page;
  }
}

TEST(Registry, EachServerOfTheListHasItsOwnSeries) {
  Registry registry("test");
  const auto pool = registry.add_pool("app", app_labels());
  // db2 is not in the list the pool was added with (a reload added it): made when first seen.
  pool->record_eviction("db2:5432", "ping_timeout", 1s);
  pool->record_connect_failure("db2:5432", "refused");
  pool->observe_ping("db1:5432", 1ms);
  const std::string page = registry.serialize();
  for (const char* series : {
           "pgvigil_evictions_total{pool=\"app\",reason=\"ping_timeout\",server=\"db2:5432\"} 1\n",
           "pgvigil_evictions_total{pool=\"app\",reason=\"ping_timeout\",server=\"db1:5432\"} 0\n",
           "pgvigil_evictions_total{pool=\"app\",reason=\"server_closed\",server=\"db2:5432\"} 0\n",
           "pgvigil_connect_failures_total{cause=\"refused\",pool=\"app\",server=\"db2:5432\"} 1\n",
           "pgvigil_connect_failures_total{cause=\"refused\",pool=\"app\",server=\"db1:5432\"} 0\n",
           "pgvigil_ping_latency_seconds_count{pool=\"app\",server=\"db1:5432\"} 1\n",
           "pgvigil_ping_latency_seconds_count{pool=\"app\",server=\"db2:5432\"} 0\n",
       }) {
    EXPECT_TRUE(contains(page, series)) << series << "\n" << page;
  }
  registry.remove_pool("app");
  EXPECT_FALSE(contains(registry.serialize(), "server=\"db2:5432\""));
}

TEST(Registry, AServersRoleIsOneSeriesPerRoleAndGoesWithItsPool) {
  Registry registry("test");
  auto pool = registry.add_pool("app", app_labels());
  pool->set_server_role("db1:5432", "standby");
  pool->set_server_role("db1:5432", "primary");
  pool->record_failover();
  const std::string page = registry.serialize();
  EXPECT_TRUE(
      contains(page, "pgvigil_server_role{pool=\"app\",role=\"primary\",server=\"db1:5432\"} 1\n"))
      << page;
  EXPECT_TRUE(
      contains(page, "pgvigil_server_role{pool=\"app\",role=\"standby\",server=\"db1:5432\"} 0\n"))
      << page;
  EXPECT_TRUE(contains(page, "pgvigil_failovers_total{pool=\"app\"} 1\n")) << page;
  registry.remove_pool("app");
  const std::string after = registry.serialize();
  EXPECT_FALSE(contains(after, "pgvigil_server_role{")) << after;
  EXPECT_FALSE(contains(after, "pgvigil_failovers_total{")) << after;
}

TEST(Registry, TheScrapeHookRunsBeforeEverySerialization) {
  Registry registry("test");
  const auto pool = registry.add_pool("app", app_labels());
  int idle = 0;
  registry.on_scrape([&] { pool->set_connections("idle", ++idle); });
  EXPECT_TRUE(contains(registry.serialize(),
                       "pgvigil_server_connections{pool=\"app\",state=\"idle\"} 1\n"));
  EXPECT_TRUE(contains(registry.serialize(),
                       "pgvigil_server_connections{pool=\"app\",state=\"idle\"} 2\n"));
}

TEST(Registry, LabelsOutsideTheSetsAreIgnored) {
  Registry registry("test");
  const auto pool = registry.add_pool("app", app_labels());
  const std::string before = registry.serialize();
  pool->record_eviction("db1:5432", "made_up_reason", 1s);
  pool->record_connect_failure("db1:5432", "made_up_cause");
  pool->set_connections("made_up_state", 7);
  const std::string after = registry.serialize();
  EXPECT_FALSE(contains(after, "made_up")) << after;
  EXPECT_EQ(before, after);
}

TEST(Registry, RemovePoolRemovesItsSeriesOnly) {
  Registry registry("test");
  const auto app = registry.add_pool("app", app_labels());
  registry.add_pool("reports", app_labels());
  registry.remove_pool("app");
  // A handle the pool still holds must be harmless and must not bring series back.
  app->record_eviction("db1:5432", "ping_timeout", 1s);
  app->observe_ping("db1:5432", 1ms);
  app->set_connections("idle", 1);

  const std::string page = registry.serialize();
  EXPECT_FALSE(contains(page, "pool=\"app\"")) << page;
  EXPECT_TRUE(contains(page, "pgvigil_server_connections{pool=\"reports\",state=\"idle\"} 0\n"))
      << page;
  registry.remove_pool("never_added");  // Not an error.
}

TEST(Registry, AddingAPoolAgainKeepsItsSeries) {
  Registry registry("test");
  const auto first = registry.add_pool("app", app_labels());
  first->record_checkout_timeout();
  auto more_labels = app_labels();
  more_labels.eviction_reasons.push_back("reload");
  const auto second = registry.add_pool("app", more_labels);

  EXPECT_EQ(first, second);
  const std::string page = registry.serialize();
  EXPECT_TRUE(contains(page, "pgvigil_checkout_timeouts_total{pool=\"app\"} 1\n")) << page;
  EXPECT_TRUE(contains(
      page, "pgvigil_evictions_total{pool=\"app\",reason=\"reload\",server=\"db1:5432\"} 0\n"))
      << page;
}

TEST(Registry, ReAddingARemovedPoolStartsFromZero) {
  Registry registry("test");
  registry.add_pool("app", app_labels())->record_checkout_timeout();
  registry.remove_pool("app");
  registry.add_pool("app", app_labels());
  EXPECT_TRUE(contains(registry.serialize(), "pgvigil_checkout_timeouts_total{pool=\"app\"} 0\n"));
}

// Every method of a pool's handle, with a label each of its label sets knows.
void touch_every_series(PoolMetrics& pool) {
  pool.record_eviction("db1:5432", "ping_timeout", 1s);
  pool.observe_ping("db1:5432", 2ms);
  pool.observe_connect("db1:5432", 3ms);
  pool.record_connect_failure("db1:5432", "refused");
  pool.set_connections("idle", 5);
  pool.record_keepalive_mismatch("db1:5432");
  pool.observe_server_rtt("db1:5432", 4ms);
  std::vector<double> checkout_waits(buckets::kCheckoutWait.size() + 1, 1.0);
  pool.observe_checkout_waits(checkout_waits, 0.5);
  pool.record_checkout_timeout();
}

// A detached handle must write nowhere: its children are freed. The write would happen inside
// libprometheus-cpp-core, which AddressSanitizer does not instrument, so these tests make it
// visible in a plain build (as client_metrics_test's do): right after the old children are freed
// the same pool (or a whole registry) is built again, its children have the same sizes, and the
// heap hands them the freed addresses. A stale handle that still wrote would change the new page.
// Checked: without the detached_ checks in PoolSeries, or without the detach in ~Registry, these
// fail.
TEST(Registry, ARemovedPoolsHandleLeavesThePoolAddedAgainAlone) {
  Registry registry("test");
  const auto stale = registry.add_pool("app", app_labels());
  registry.remove_pool("app");
  registry.add_pool("app", app_labels());
  const std::string before = registry.serialize();
  touch_every_series(*stale);
  EXPECT_EQ(registry.serialize(), before);
}

TEST(Registry, HandlesThatOutliveTheRegistryLeaveTheNextOneAlone) {
  std::shared_ptr<PoolMetrics> stale;
  {
    Registry registry("test");
    stale = registry.add_pool("app", app_labels());
  }
  Registry next("test");
  next.add_pool("app", app_labels());
  const std::string before = next.serialize();
  touch_every_series(*stale);
  EXPECT_EQ(next.serialize(), before);
}

// Recording, scraping and pool churn from several threads at once; run under a sanitizer to
// make it meaningful, but even plainly it must not crash or lose counts.
TEST(Registry, ConcurrentUseIsSafe) {
  Registry registry("test");
  const auto pool = registry.add_pool("app", app_labels());
  constexpr int kPerThread = 2000;
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) pool->record_eviction("db1:5432", "server_closed", 10ms);
    });
  }
  threads.emplace_back([&] {
    for (int i = 0; i < 200; ++i) {
      registry.add_pool("churn", app_labels())->record_checkout_timeout();
      registry.remove_pool("churn");
    }
  });
  threads.emplace_back([&] {
    for (int i = 0; i < 50; ++i) (void)registry.serialize();
  });
  for (auto& thread : threads) thread.join();
  EXPECT_TRUE(contains(
      registry.serialize(),
      "pgvigil_evictions_total{pool=\"app\",reason=\"server_closed\",server=\"db1:5432\"} " +
          std::to_string(3 * kPerThread) + "\n"));
}

}  // namespace
}  // namespace pgvigil::metrics
