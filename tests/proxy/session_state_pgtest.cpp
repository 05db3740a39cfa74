// A client's session state in transaction pooling, through the real pgvigil binary: what a
// client sets is its own, follows it to whichever server connection it gets next, and never
// reaches another client.

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <set>
#include <string>

#include "tests/proxy/pq_client.hpp"
#include "tests/proxy/proxy_pg_fixture.hpp"

namespace pgvigil::testing {
namespace {

class SessionStatePgTest : public ProxyPgFixture {};

TEST_F(SessionStatePgTest, ASettingTheServerReportsFollowsItsClientAndNoOtherClient) {
  start_daemon({.databases = {{.name = "tx", .pool = "{max_size: 2, min_idle: 2}"}}});
  const auto default_timezone = pg_->query_value("SHOW TimeZone");
  ASSERT_NE(default_timezone, "Pacific/Auckland");
  auto a = pq_connect(conninfo("tx", "postgres", "application_name=client_a"));
  auto b = pq_connect(conninfo("tx"));
  ASSERT_TRUE(pq_ok(a) && pq_ok(b)) << PQerrorMessage(a.get()) << PQerrorMessage(b.get());

  // Session-level SETs in one transaction...
  ASSERT_EQ(pq_run(a, "BEGIN; SET TimeZone = 'Pacific/Auckland'; SET application_name = 'a_app';"
                      " SET DateStyle = 'German'; SET IntervalStyle = 'sql_standard'; COMMIT"),
            "");
  // ...and one rolled back, which the server undoes (and reports undone).
  ASSERT_EQ(pq_run(a, "BEGIN; SET TimeZone = 'Asia/Tokyo'; ROLLBACK"), "");
  // A SET LOCAL lasts its transaction only.
  ASSERT_EQ(pq_run(a, "BEGIN; SET LOCAL application_name = 'only_here'; COMMIT"), "");
  // The client sees the server's spelling.
  EXPECT_STREQ(PQparameterStatus(a.get(), "DateStyle"), "German, DMY");

  std::set<std::string> a_backends;
  for (int i = 0; i < 20; ++i) {
    // b holds one connection now and then, so a's transactions run on both.
    const bool hold = i % 2 == 0;
    if (hold) ASSERT_EQ(pq_run(b, "BEGIN"), "");
    a_backends.insert(pq_value(a, "SELECT pg_backend_pid()").value_or("?"));
    EXPECT_EQ(pq_value(a, "SHOW TimeZone"), "Pacific/Auckland") << i;
    EXPECT_EQ(pq_value(a, "SHOW application_name"), "a_app") << i;
    EXPECT_EQ(pq_value(a, "SHOW DateStyle"), "German, DMY") << i;
    EXPECT_EQ(pq_value(a, "SHOW IntervalStyle"), "sql_standard") << i;
    EXPECT_NE(pq_value(b, "SHOW TimeZone"), "Pacific/Auckland") << i;
    EXPECT_NE(pq_value(b, "SHOW application_name"), "a_app") << i;
    EXPECT_EQ(pq_value(b, "SHOW IntervalStyle"), "postgres") << i;
    if (hold) ASSERT_EQ(pq_run(b, "COMMIT"), "");
  }
  EXPECT_EQ(a_backends.size(), 2u) << "a's settings went with it to both server connections";

  // RESET takes the client back to the server's default, wherever it goes next.
  ASSERT_EQ(pq_run(a, "RESET TimeZone"), "");
  ASSERT_EQ(pq_run(b, "BEGIN"), "");
  EXPECT_EQ(pq_value(a, "SHOW TimeZone"), default_timezone);
  ASSERT_EQ(pq_run(b, "COMMIT"), "");
  EXPECT_EQ(pq_value(a, "SHOW TimeZone"), default_timezone);

  // A client that comes later sees none of it.
  auto c = pq_connect(conninfo("tx"));
  ASSERT_TRUE(pq_ok(c));
  for (int i = 0; i < 4; ++i) {
    EXPECT_NE(pq_value(c, "SHOW application_name"), "a_app");
    EXPECT_EQ(pq_value(c, "SHOW IntervalStyle"), "postgres");
    EXPECT_EQ(pq_value(c, "SHOW DateStyle"), pg_->query_value("SHOW DateStyle"));
  }
}

}  // namespace
}  // namespace pgvigil::testing
