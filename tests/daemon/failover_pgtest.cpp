// Several servers per database, against a real primary and a streaming standby the harness
// starts (pg_basebackup -R): the pool connects only to the server whose role matches
// target_session_attrs, follows a promotion, and lets a promoted standby's connections go.

#include <gtest/gtest.h>

#include <cstdio>

#include "tests/daemon/failover_fixture.hpp"
#include "tests/metrics/http_client.hpp"

namespace pgvigil::testing {
namespace {

TEST_F(FailoverPgTest, SeveralHostsServeFromThePrimaryByDefault) {
  // The standby is listed first: read-write (the default with several hosts) skips it.
  auto daemon = start(host_entry(*standby_) + ", " + host_entry(*primary_), "");
  auto conn = client();
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(value_through(conn.get(), "SELECT inet_server_port()"),
              std::to_string(primary_->port()));
    EXPECT_EQ(
        value_through(conn.get(), "INSERT INTO writes (note) VALUES ('default') RETURNING 'ok'"),
        "ok");
  }
  // The standby was asked its role and let go; its backend may still be exiting. One the pool
  // kept would stay.
  EXPECT_TRUE(wait_until([&] { return standby_->backend_pids("pgvigil-failover").empty(); },
                         seconds(5)))
      << "a connection was kept on the standby";
  EXPECT_EQ(server_role(ports_, *standby_, "standby"), 1);
  EXPECT_EQ(server_role(ports_, *primary_, "primary"), 1);
  EXPECT_EQ(metric(ports_.admin, "pgvigil_failovers_total", {{"pool", "app"}}), 0);
  const auto ready = test::http_get("127.0.0.1", ports_.admin, "/readyz");
  EXPECT_NE(ready.body.find(" on 127.0.0.1:" + std::to_string(primary_->port()) + " (primary)"),
            std::string::npos)
      << ready.body;
  // min_idle 2 (a third may be opened while the client holds one).
  EXPECT_GE(primary_->backend_pids("pgvigil-failover").size(), 2u) << daemon->log_text();
}

TEST_F(FailoverPgTest, StandbyTargetReadsFromTheStandby) {
  auto daemon = start(host_entry(*primary_) + ", " + host_entry(*standby_), "standby");
  auto conn = client();
  EXPECT_EQ(value_through(conn.get(), "SELECT inet_server_port()"),
            std::to_string(standby_->port()));
  EXPECT_EQ(value_through(conn.get(), "SELECT pg_is_in_recovery()"), "t");
  // The primary was asked its role and let go (a loaded machine may still be ending that
  // backend): none stays.
  EXPECT_TRUE(wait_until([&] { return primary_->backend_pids("pgvigil-failover").empty(); },
                         seconds(5)))
      << daemon->log_text();
}

TEST_F(FailoverPgTest, UnplannedFailoverServesWritesFromThePromotedStandbyWithoutAReload) {
  auto daemon = start(host_entry(*primary_) + ", " + host_entry(*standby_), "");
  auto conn = client();
  ASSERT_EQ(value_through(conn.get(), "INSERT INTO writes (note) VALUES ('before') RETURNING 'ok'"),
            "ok");

  const auto crashed_at = Clock::now();
  primary_->stop("immediate");
  standby_->promote();
  const auto promoted_at = Clock::now();
  // Writes go on as an application's would: a failed one is retried, on a new client
  // connection when pgvigil closed this one.
  std::string last_error;
  const bool written = wait_until(
      [&] {
        if (PQstatus(conn.get()) != CONNECTION_OK) conn = connect_client(ports_.listen, "app");
        const auto value =
            value_through(conn.get(), "INSERT INTO writes (note) VALUES ('after') RETURNING 'ok'");
        if (value != "ok") last_error = value;
        return value == "ok";
      },
      seconds(15), milliseconds(10));
  const auto written_at = Clock::now();
  const auto took = std::chrono::duration<double>(written_at - promoted_at).count();
  ASSERT_TRUE(written) << last_error << "\n" << daemon->log_text();
  std::printf("first write served %.3f s after the promotion returned\n", took);
  // The bound the issue sets is 1 s on an idle machine; ctest allows for a loaded one, and
  // bench/failover measures it.
  EXPECT_LT(took, 5.0);
  EXPECT_EQ(value_through(conn.get(), "SELECT inet_server_port()"),
            std::to_string(standby_->port()));
  EXPECT_EQ(standby_->query_value("SELECT count(*) FROM writes WHERE note = 'after'"), "1");
  EXPECT_EQ(metric(ports_.admin, "pgvigil_failovers_total", {{"pool", "app"}}), 1);
  EXPECT_EQ(server_role(ports_, *standby_, "primary"), 1);
  EXPECT_EQ(server_role(ports_, *standby_, "standby"), 0);
  // Timed from the first sign (the crashed primary refusing a connection, or its connections'
  // deaths making it suspect) to the first transaction lent a connection to the new primary.
  EXPECT_EQ(metric(ports_.admin, "pgvigil_failover_seconds_count", {{"pool", "app"}}), 1);
  const double failover_seconds =
      metric(ports_.admin, "pgvigil_failover_seconds_sum", {{"pool", "app"}}).value_or(-1);
  std::printf("pgvigil_failover_seconds observed %.3f s\n", failover_seconds);
  EXPECT_GT(failover_seconds, 0);
  // Its first sign came after the crash and the first write lent the new primary a connection
  // before the client saw it served. (Not bounded from the promotion: pg_ctl promote itself has
  // taken 5 s on a loaded machine, the time before `took` starts.)
  const auto crash_to_write = std::chrono::duration<double>(written_at - crashed_at).count();
  EXPECT_LT(failover_seconds, crash_to_write + 0.1)
      << "from the crash to the first write served: " << crash_to_write << " s";
  // The series of one server carry its label: the crash's evictions are the old primary's, the
  // connections opened since the new one's.
  const auto of = [](const PgCluster& server) {
    return Labels{{"pool", "app"}, {"server", "127.0.0.1:" + std::to_string(server.port())}};
  };
  EXPECT_GE(metric(ports_.admin, "pgvigil_evictions_total", of(*primary_)).value_or(0), 1);
  EXPECT_EQ(metric(ports_.admin, "pgvigil_evictions_total", of(*standby_)), 0);
  EXPECT_GE(
      metric(ports_.admin, "pgvigil_connect_latency_seconds_count", of(*standby_)).value_or(0), 1);

  // The old primary comes back as a standby of the new one: no transaction runs on it, even on
  // connections opened afterwards.
  primary_->rejoin_as_standby_of(*standby_);
  for (const pid_t pid : standby_->backend_pids("pgvigil-failover"))
    standby_->terminate_backend(pid);
  for (int i = 0; i < 20; ++i) {
    auto fresh = client();
    EXPECT_EQ(value_through(fresh.get(), "SELECT inet_server_port()"),
              std::to_string(standby_->port()));
  }
  // The primary was asked its role and let go (a loaded machine may still be ending that
  // backend): none stays.
  EXPECT_TRUE(wait_until([&] { return primary_->backend_pids("pgvigil-failover").empty(); },
                         seconds(5)))
      << daemon->log_text();
}

TEST_F(FailoverPgTest, APromotedStandbyLeavesAStandbyPoolOnceItsClientsFinish) {
  auto daemon = start(host_entry(*standby_), "standby", "2s");
  auto holder = client();
  ASSERT_EQ(value_through(holder.get(), "BEGIN"), "");
  ASSERT_EQ(value_through(holder.get(), "SELECT pg_is_in_recovery()"), "t");

  primary_->stop("immediate");
  standby_->promote();
  // The idle connections learn it at their next ping, the held one when its client's next
  // statement is answered; each goes with reason role_changed.
  EXPECT_TRUE(wait_until([&] { return evictions(ports_, "role_changed") >= 1; }, seconds(15)))
      << daemon->log_text();
  EXPECT_EQ(value_through(holder.get(), "SELECT pg_is_in_recovery()"), "f");
  ASSERT_EQ(value_through(holder.get(), "COMMIT"), "");
  EXPECT_TRUE(wait_until(
      [&] {
        return metric(ports_.admin, "pgvigil_server_connections",
                      {{"pool", "app"}, {"state", "idle"}}) == 0 &&
               metric(ports_.admin, "pgvigil_server_connections",
                      {{"pool", "app"}, {"state", "checked_out"}}) == 0;
      },
      seconds(15)))
      << daemon->log_text();
  EXPECT_GE(evictions(ports_, "role_changed"), 2);
  EXPECT_EQ(server_role(ports_, *standby_, "primary"), 1);
  // No standby is left: a client's query is refused after checkout_timeout, not served by
  // the primary.
  const auto value = value_through(holder.get(), "SELECT pg_is_in_recovery()");
  EXPECT_TRUE(value.starts_with("ERROR")) << value;
}

double connections_in(const Ports& ports, const std::string& state) {
  return metric(ports.admin, "pgvigil_server_connections", {{"pool", "app"}, {"state", state}})
      .value_or(-1);
}

TEST_F(FailoverPgTest, AWriteRefusedAsReadOnlyOnThePrimaryHasItsRoleAskedAgain) {
  auto daemon = start(host_entry(*primary_) + ", " + host_entry(*standby_), "", "2s");
  const auto returned_and_asked = [&] {
    return connections_in(ports_, "checked_out") == 0 && connections_in(ports_, "probing") == 0 &&
           connections_in(ports_, "idle") >= 2;
  };
  // A read-only transaction the client asked for: the server is still the primary, and the
  // connection stays.
  {
    auto conn = client();
    ASSERT_EQ(value_through(conn.get(), "BEGIN READ ONLY"), "");
    const auto refused = value_through(conn.get(), "INSERT INTO writes (note) VALUES ('no')");
    EXPECT_NE(refused.find("read-only transaction"), std::string::npos) << refused;
    ASSERT_EQ(value_through(conn.get(), "ROLLBACK"), "");
  }
  ASSERT_TRUE(wait_until(returned_and_asked, seconds(10))) << daemon->log_text();
  EXPECT_EQ(evictions(ports_, "role_changed"), 0) << daemon->log_text();

  // The primary stops taking writes (an operator, or a failover tool, made it read-only): the
  // first write refused with 25006 has its role asked, and every connection to it goes.
  primary_->execute("ALTER SYSTEM SET default_transaction_read_only = on");
  primary_->execute("SELECT pg_reload_conf()");
  // The reload is asynchronous: once a new backend sees it, the postmaster has signalled the
  // old ones too, and each applies it before its next statement.
  ASSERT_TRUE(wait_until(
      [&] { return primary_->query_value("SHOW default_transaction_read_only") == "on"; },
      seconds(10)));
  {
    auto conn = client();
    const auto refused = value_through(conn.get(), "INSERT INTO writes (note) VALUES ('no')");
    EXPECT_NE(refused.find("read-only transaction"), std::string::npos) << refused;
  }
  EXPECT_TRUE(wait_until([&] { return evictions(ports_, "role_changed") >= 2; }, seconds(10)))
      << daemon->log_text();
  EXPECT_TRUE(wait_until([&] { return connections_in(ports_, "idle") == 0; }, seconds(10)))
      << daemon->log_text();

  // Writable again: the pool connects to it again, and writes go through.
  primary_->execute("ALTER SYSTEM RESET default_transaction_read_only");
  primary_->execute("SELECT pg_reload_conf()");
  std::string last;
  EXPECT_TRUE(wait_until(
      [&] {
        auto conn = client();
        last = value_through(conn.get(), "INSERT INTO writes (note) VALUES ('yes') RETURNING 'ok'");
        return last == "ok";
      },
      seconds(20), milliseconds(200)))
      << last << "\n"
      << daemon->log_text();
}

}  // namespace
}  // namespace pgvigil::testing
