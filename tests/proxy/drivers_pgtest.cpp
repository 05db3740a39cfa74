// The most used drivers, each with its default settings, through pgvigil in transaction pooling
// with fewer server connections than the driver has connections, so that named prepared
// statements must follow their clients between server connections. Each driver's program
// (tests/drivers/) checks every result itself and prints one "<driver> OK" line; it exits
// non-zero on any error or wrong result.

#include <gtest/gtest.h>

#include <string>

#include "tests/proxy/proxy_pg_fixture.hpp"

namespace pgvigil::testing {
namespace {

const std::string kDrivers = std::string(PGVIGIL_SOURCE_DIR) + "/tests/drivers";
// Compiled drivers (Java classes, the Go binary and its build cache) are kept between runs.
const std::string kDriverBuilds = PGVIGIL_DRIVER_BUILD_DIR;

class DriversPgTest : public ProxyPgFixture {
 protected:
  void SetUp() override {
    ProxyPgFixture::SetUp();
    // Named "postgres": the programs ask for that database, as their own defaults do.
    // One pool of two, not a shard of one per worker: pgjdbc's check after its workload looks
    // for its named statements in pg_prepared_statements, which a connection a shard opened in
    // a place another gave up (pool.shards) has not prepared yet.
    start_daemon(
        {.databases = {{.name = "postgres", .pool = "{max_size: 2, min_idle: 1, shards: 1}"}}});
  }

  void expect_driver_ok(const std::string& command, const std::string& ok_line) {
    const auto ran = run_shell(command + " 2>&1", seconds(180));
    EXPECT_EQ(ran.exit_code, 0) << command << ":\n" << ran.output;
    EXPECT_TRUE(contains(ran.output, ok_line + " OK")) << command << ":\n" << ran.output;
    EXPECT_FALSE(contains(ran.output, ok_line + " FAILED")) << ran.output;
  }

  std::string dsn() const { return conninfo("postgres"); }
};

TEST_F(DriversPgTest, PgjdbcWithHikariCpAndItsDefaultPrepareThreshold) {
  expect_driver_ok(kDrivers + "/java/run.sh 'jdbc:postgresql://127.0.0.1:" + std::to_string(port_) +
                       "/postgres?user=postgres&sslmode=disable' " + kDriverBuilds + "/java",
                   "pgjdbc");
}

TEST_F(DriversPgTest, NodePostgresNamedQueries) {
  // Debian's node-pg, or the one npm installed beside the program (found first).
  expect_driver_ok("NODE_PATH=/usr/share/nodejs node " + kDrivers +
                       "/node/named_queries.js 127.0.0.1 " + std::to_string(port_),
                   "node-postgres");
}

TEST_F(DriversPgTest, Psycopg3WithItsDefaultPrepareThresholdAndPrepareTrue) {
  expect_driver_ok("/usr/bin/python3 " + kDrivers + "/python/psycopg3_client.py '" + dsn() + "'",
                   "psycopg3");
}

TEST_F(DriversPgTest, AsyncpgWhichPreparesEveryQuery) {
  expect_driver_ok("/usr/bin/python3 " + kDrivers + "/python/asyncpg_client.py '" + dsn() + "'",
                   "asyncpg");
}

TEST_F(DriversPgTest, PgxWithItsStatementCache) {
  expect_driver_ok(
      kDrivers + "/go/run.sh 127.0.0.1 " + std::to_string(port_) + " " + kDriverBuilds + "/go",
      "pgx");
}

}  // namespace
}  // namespace pgvigil::testing
