#include "tests/daemon/failover_fixture.hpp"

#include <fstream>
#include <sstream>

#include "tests/support/subprocess.hpp"

namespace pgvigil::testing {

std::string host_entry(const PgCluster& pg) {
  return "\"127.0.0.1:" + std::to_string(pg.port()) + "\"";
}

std::string value_through(PGconn* conn, const std::string& sql) {
  PGresult* result = PQexec(conn, sql.c_str());
  std::string value;
  if (PQresultStatus(result) == PGRES_TUPLES_OK && PQntuples(result) > 0) {
    value = PQgetvalue(result, 0, 0);
  } else if (PQresultStatus(result) != PGRES_COMMAND_OK) {
    value = "ERROR: " + std::string(PQerrorMessage(conn));
  }
  PQclear(result);
  return value;
}

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

double server_role(const Ports& ports, const PgCluster& server, const std::string& role) {
  return metric(ports.admin, "pgvigil_server_role",
                {{"pool", "app"},
                 {"server", "127.0.0.1:" + std::to_string(server.port())},
                 {"role", role}})
      .value_or(-1);
}

double evictions(const Ports& ports, const std::string& reason) {
  return metric(ports.admin, "pgvigil_evictions_total", {{"pool", "app"}, {"reason", reason}})
      .value_or(0);
}

void FailoverPgTest::SetUp() {
  primary_ = PgCluster::start_new();
  primary_->execute("CREATE TABLE writes (id serial PRIMARY KEY, note text)");
  standby_ = PgCluster::start_standby_of(*primary_);
  // The standby has replayed the table: it is streaming.
  ASSERT_TRUE(wait_until(
      [&] {
        try {
          return standby_->query_value("SELECT count(*) FROM pg_class WHERE relname = 'writes'") ==
                 "1";
        } catch (const std::exception&) {
          return false;
        }
      },
      seconds(30)));
  ASSERT_EQ(standby_->query_value("SELECT pg_is_in_recovery()"), "t");
}

bool FailoverPgTest::caught_up(const PgCluster& standby) {
  // The insert position: the harness's servers commit asynchronously, so the write position may
  // not have reached the last commit yet.
  const auto written = primary_->query_value("SELECT pg_current_wal_insert_lsn()");
  return wait_until(
      [&] {
        return standby.query_value("SELECT pg_last_wal_replay_lsn() >= '" + written +
                                   "'::pg_lsn") == "t";
      },
      seconds(30));
}

std::optional<std::filesystem::path> FailoverPgTest::pgbench_tables(
    const std::filesystem::path& work) {
  const auto pgbench = find_executable("pgbench");
  if (!pgbench) {
    ADD_FAILURE() << "pgbench is not installed";
    return std::nullopt;
  }
  const auto log = work / "pgbench-init.log";
  if (run_process({pgbench->string(), "-i", "-q", "-s", "1", "-h", "127.0.0.1", "-p",
                   std::to_string(primary_->port()), "-U", "postgres", "postgres"},
                  log, work, seconds(120)) != 0) {
    ADD_FAILURE() << "pgbench -i failed: " << read_text(log);
    return std::nullopt;
  }
  if (!caught_up(*standby_)) {
    ADD_FAILURE() << "the standby did not replay pgbench's tables";
    return std::nullopt;
  }
  return pgbench;
}

std::unique_ptr<DaemonProcess> FailoverPgTest::start(const std::string& hosts,
                                                     const std::string& target,
                                                     const std::string& checkout_timeout,
                                                     const std::string& pool_extra) {
  const std::string yaml =
      "workers: 2\n"
      "admin: {listen: \"127.0.0.1:" +
      std::to_string(ports_.admin) + "\"}\n" +
      "listen: {address: \"127.0.0.1:" + std::to_string(ports_.listen) + "\"}\n" +
      "ping: {interval: 1s, timeout: 500ms, jitter: 0}\n"
      "pool: {" +
      pool_extra + "min_idle: 2, max_size: 4, checkout_timeout: " + checkout_timeout + "}\n" +
      "databases:\n"
      "  app:\n"
      "    hosts: [" +
      hosts + "]\n" + (target.empty() ? "" : "    target_session_attrs: " + target + "\n") +
      "    dbname: postgres\n"
      "    user: postgres\n"
      "    sslmode: disable\n"
      "    application_name: pgvigil-failover\n";
  auto daemon = DaemonProcess::start(PGVIGIL_BINARY, yaml);
  EXPECT_TRUE(wait_until(
      [&] {
        return metric(ports_.admin, "pgvigil_server_connections",
                      {{"pool", "app"}, {"state", "idle"}}) == 2;
      },
      seconds(20)))
      << daemon->log_text();
  return daemon;
}

Client FailoverPgTest::client() {
  auto conn = connect_client(ports_.listen, "app");
  EXPECT_EQ(PQstatus(conn.get()), CONNECTION_OK) << PQerrorMessage(conn.get());
  return conn;
}

}  // namespace pgvigil::testing
