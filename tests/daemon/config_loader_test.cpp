#include "daemon/config_loader.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "tests/daemon/config_parse_util.hpp"

namespace pgvigil::daemon {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(ConfigLoaderTest, MinimalConfigTakesEveryDefault) {
  const Config config = parse(minimal_config);
  EXPECT_EQ(config.source_path, "test.yaml");
  EXPECT_EQ(config.workers, 0);
  EXPECT_EQ(config.log.level, "info");
  EXPECT_EQ(config.log.format, "text");
  EXPECT_EQ(config.admin.host, "127.0.0.1");
  EXPECT_EQ(config.admin.port, 9930);
  ASSERT_EQ(config.databases.size(), 1u);
  const pool::PoolConfig& db = config.databases[0];
  EXPECT_EQ(db.name, "app");
  ASSERT_EQ(db.server.hosts.size(), 1u);
  EXPECT_EQ(db.server.hosts[0].host, "127.0.0.1");
  EXPECT_EQ(db.server.hosts[0].port, 5432);
  EXPECT_EQ(db.server.target_session_attrs, pool::TargetSessionAttrs::any);
  EXPECT_EQ(db.server.dbname, "app");  // the entry's name
  EXPECT_EQ(db.server.user, "app");
  EXPECT_EQ(db.server.password, "");
  EXPECT_EQ(db.server.application_name, "pgvigil");
  EXPECT_EQ(db.server.tls, (std::map<std::string, std::string>{{"sslmode", "prefer"}}));
  EXPECT_EQ(db.keepalive, probes::KeepaliveSettings{});
  EXPECT_EQ(db.ping, probes::PingSettings{});
  const pool::PoolSettings defaults;
  EXPECT_EQ(db.pool.min_idle, defaults.min_idle);
  EXPECT_EQ(db.pool.max_size, defaults.max_size);
  EXPECT_EQ(db.pool.max_lifetime, defaults.max_lifetime);
  EXPECT_EQ(db.pool.reconnect.max_delay, defaults.reconnect.max_delay);
}

TEST(ConfigLoaderTest, ReadsEveryTopLevelKey) {
  const Config config = parse(
      "workers: 4\n"
      "log: {level: warn, format: json}\n"
      "admin: {listen: \"[::1]:9999\"}\n"
      "keepalive: {idle: 7s, interval: 1s, count: 5, user_timeout: 12500ms}\n"
      "ping: {interval: 3s, timeout: 250ms, jitter: 0.25, query: SELECT 1}\n"
      "pool:\n"
      "  min_idle: 1\n  max_size: 3\n  connect_timeout: 2s\n  checkout_timeout: 3s\n"
      "  max_lifetime: 1h\n  lifetime_jitter: 0.5\n  idle_timeout: 0\n"
      "  validate_after_idle: 0\n"
      "  reconnect: {initial_delay: 50ms, max_delay: 10s, max_delay_while_clients_wait: 500ms}\n" +
      minimal_config);
  EXPECT_EQ(config.workers, 4);
  EXPECT_EQ(config.log.level, "warn");
  EXPECT_EQ(config.log.format, "json");
  EXPECT_EQ(config.admin.host, "::1");
  EXPECT_EQ(config.admin.port, 9999);
  const pool::PoolConfig& db = config.databases.at(0);
  EXPECT_EQ(db.keepalive.idle, seconds{7});
  EXPECT_EQ(db.keepalive.interval, seconds{1});
  EXPECT_EQ(db.keepalive.count, 5);
  EXPECT_EQ(db.keepalive.user_timeout, milliseconds{12500});
  EXPECT_EQ(db.ping.interval, milliseconds{3000});
  EXPECT_EQ(db.ping.timeout, milliseconds{250});
  EXPECT_DOUBLE_EQ(db.ping.jitter, 0.25);
  EXPECT_EQ(db.ping.query, "SELECT 1");
  EXPECT_EQ(db.pool.min_idle, 1);
  EXPECT_EQ(db.pool.max_size, 3);
  EXPECT_EQ(db.pool.connect_timeout, milliseconds{2000});
  EXPECT_EQ(db.pool.checkout_timeout, milliseconds{3000});
  EXPECT_EQ(db.pool.max_lifetime, milliseconds{3'600'000});
  EXPECT_DOUBLE_EQ(db.pool.lifetime_jitter, 0.5);
  EXPECT_EQ(db.pool.idle_timeout, milliseconds{0});
  EXPECT_EQ(db.pool.validate_after_idle, milliseconds{0});
  EXPECT_EQ(db.pool.reconnect.initial_delay, milliseconds{50});
  EXPECT_EQ(db.pool.reconnect.max_delay, milliseconds{10'000});
  EXPECT_EQ(db.pool.reconnect.max_delay_while_clients_wait, milliseconds{500});
}

TEST(ConfigLoaderTest, DatabasesOverrideSectionDefaultsKeyByKey) {
  const Config config = parse(
      "keepalive: {idle: 10s}\n"
      "ping: {timeout: 2s}\n"
      "pool: {max_size: 20, reconnect: {max_delay: 1m}}\n"
      "databases:\n"
      "  app:\n"
      "    user: app\n"
      "  reports:\n"
      "    user: reader\n"
      "    dbname: reporting\n"
      "    host: /var/run/postgresql\n"
      "    pool: {min_idle: 0, reconnect: {initial_delay: 1s}}\n"
      "    keepalive: {count: 9}\n"
      "    ping: {query: \"SELECT pg_is_in_recovery()\"}\n");
  ASSERT_EQ(config.databases.size(), 2u);
  const pool::PoolConfig& app = config.databases[0];
  const pool::PoolConfig& reports = config.databases[1];
  EXPECT_EQ(app.name, "app");
  EXPECT_EQ(app.keepalive.idle, seconds{10});
  EXPECT_EQ(app.keepalive.count, 3);
  EXPECT_EQ(app.pool.min_idle, 2);
  EXPECT_EQ(app.pool.max_size, 20);
  EXPECT_EQ(app.ping.query, "");

  EXPECT_EQ(reports.name, "reports");
  EXPECT_EQ(reports.server.dbname, "reporting");
  EXPECT_TRUE(reports.server.hosts.at(0).is_unix_socket());
  EXPECT_EQ(reports.pool.min_idle, 0);   // overridden
  EXPECT_EQ(reports.pool.max_size, 20);  // inherited from the top level
  EXPECT_EQ(reports.pool.reconnect.initial_delay, milliseconds{1000});
  EXPECT_EQ(reports.pool.reconnect.max_delay, milliseconds{60'000});
  EXPECT_EQ(reports.keepalive.idle, seconds{10});
  EXPECT_EQ(reports.keepalive.count, 9);
  EXPECT_EQ(reports.ping.timeout, milliseconds{2000});
  EXPECT_EQ(reports.ping.query, "SELECT pg_is_in_recovery()");
}

TEST(ConfigLoaderTest, TlsKeysGoToTheLibpqMapOnlyWhenSet) {
  const Config config = parse(minimal_config +
                              "    sslmode: verify-full\n"
                              "    sslrootcert: /ca.pem\n"
                              "    sslcert: \"\"\n");
  EXPECT_EQ(
      config.databases[0].server.tls,
      (std::map<std::string, std::string>{{"sslmode", "verify-full"}, {"sslrootcert", "/ca.pem"}}));
}

TEST(ConfigLoaderTest, PasswordFromFileLosesTrailingNewline) {
  TempDir dir;
  const fs::path file = dir.write("pgpass", "s3cret word\n");
  const Config config = parse(minimal_config + "    password_file: " + file.string() + "\n");
  EXPECT_EQ(config.databases[0].server.password, "s3cret word");
}

TEST(ConfigLoaderTest, RelativePasswordFileIsRelativeToTheConfigFile) {
  TempDir dir;
  dir.write("pgpass", "from-dir\r\n");
  const Config config =
      parse(minimal_config + "    password_file: pgpass\n", (dir.path() / "config.yaml").string());
  EXPECT_EQ(config.databases[0].server.password, "from-dir");
}

TEST(ConfigLoaderTest, PasswordFromEnvironment) {
  const Config config =
      parse(minimal_config + "    password_env: APP_PW\n", "test.yaml", {{"APP_PW", "env-secret"}});
  EXPECT_EQ(config.databases[0].server.password, "env-secret");
}

TEST(ConfigLoaderTest, PasswordNeverAppearsInErrors) {
  TempDir dir;
  const std::string secret = "hunter2-do-not-log";
  const fs::path file = dir.write("pgpass", secret + "\n");
  const std::string with_file = minimal_config + "    password_file: " + file.string() + "\n";
  const std::string with_env = minimal_config + "    password_env: APP_PW\n";
  const std::map<std::string, std::string> env{{"APP_PW", secret}};
  for (const std::string& yaml : {
           with_file + "    sslmode: bogus\n",
           with_file + "    password_env: APP_PW\n",
           with_file + "    pool: {max_size: 0}\n",
           with_env + "    port: 0\n",
           with_env + "    application_name: [x]\n",
           with_env + "    ping: {timeout: 1h}\n",
       }) {
    const std::string what = error_of(yaml, "test.yaml", env).what();
    EXPECT_EQ(what.find(secret), std::string::npos) << what;
  }
}

TEST(ConfigLoaderTest, PoolShardsAreReadAndBoundedByMaxSize) {
  // The default: one shard per worker, never more than max_size.
  EXPECT_EQ(parse("workers: 3\n" + minimal_config).databases[0].pool.shards, 3);
  EXPECT_EQ(parse("workers: 3\n" + minimal_config + "    pool: {max_size: 2}\n")
                .databases[0]
                .pool.shards,
            2);
  EXPECT_EQ(parse("workers: 3\npool: {shards: 1}\n" + minimal_config).databases[0].pool.shards,
            1);
  EXPECT_EQ(parse(minimal_config + "    pool: {max_size: 4, shards: 2}\n").databases[0].pool.shards,
            2);
  EXPECT_STREQ(error_of(minimal_config + "    pool: {max_size: 2, shards: 3}\n").what(),
               "test.yaml:4:33: databases.app.pool.shards: shards (3) must not exceed max_size "
               "(2): every shard needs a connection");
  EXPECT_EQ(error_of(minimal_config + "    pool: {shards: -1}\n").key(), "databases.app.pool.shards");
}

TEST(ConfigLoaderTest, UnreadablePasswordFileNamesTheFile) {
  const ConfigError e = error_of(minimal_config + "    password_file: /nonexistent/pgpass\n");
  EXPECT_STREQ(e.what(),
               "test.yaml:4:20: databases.app.password_file: cannot read /nonexistent/pgpass: "
               "No such file or directory");
}

TEST(ConfigLoaderTest, EmptyPasswordFileIsAnError) {
  TempDir dir;
  const fs::path file = dir.write("pgpass", "\n");
  const ConfigError e = error_of(minimal_config + "    password_file: " + file.string() + "\n");
  EXPECT_EQ(e.key(), "databases.app.password_file");
  EXPECT_EQ(e.message(), file.string() + " is empty");
}

TEST(ConfigLoaderTest, UnsetOrEmptyEnvironmentVariableIsAnError) {
  EXPECT_STREQ(error_of(minimal_config + "    password_env: APP_PW\n").what(),
               "test.yaml:4:19: databases.app.password_env: environment variable APP_PW is not "
               "set");
  EXPECT_EQ(error_of(minimal_config + "    password_env: APP_PW\n", "test.yaml", {{"APP_PW", ""}})
                .message(),
            "environment variable APP_PW is empty");
}

TEST(ConfigLoaderTest, BothPasswordSourcesAreAnError) {
  const ConfigError e = error_of(minimal_config +
                                     "    password_file: /run/secrets/pgpass\n"
                                     "    password_env: APP_PW\n",
                                 "test.yaml", {{"APP_PW", "x"}});
  EXPECT_STREQ(e.what(),
               "test.yaml:5:19: databases.app.password_env: set at most one of password_file "
               "and password_env");
}

TEST(ConfigLoaderTest, MissingRequiredKeyPointsAtTheEnclosingMap) {
  const ConfigError e = error_of("databases:\n  app:\n    port: 5433\n");
  EXPECT_EQ(e.line(), 3);
  EXPECT_EQ(e.column(), 5);
  EXPECT_EQ(e.key(), "databases.app.user");
  EXPECT_EQ(e.message(), "required key is missing (or user_pools: true)");
}

TEST(ConfigLoaderTest, EmptyDocumentNeedsDatabases) {
  EXPECT_STREQ(error_of("").what(), "test.yaml:1:1: databases: at least one database is required");
  EXPECT_STREQ(error_of("# only a comment\n").what(),
               "test.yaml:1:1: databases: at least one database is required");
}

TEST(ConfigLoaderTest, SyntaxErrorUsesTheParserPosition) {
  const ConfigError e = error_of("workers: 1\nlog: {level: info\n");
  EXPECT_EQ(e.key(), "yaml");
  EXPECT_EQ(e.line(), 3);
  EXPECT_FALSE(e.message().empty());
  EXPECT_EQ(std::string(e.what()).find("test.yaml:3:"), 0u) << e.what();
}

TEST(ConfigLoaderTest, UnknownKeyWithoutCloseMatchListsTheKnownOnes) {
  const ConfigError e = error_of("log: {colour: red}\n" + minimal_config);
  EXPECT_STREQ(e.what(), "test.yaml:1:7: log.colour: unknown key (expected one of: format, level)");
}

TEST(ConfigLoaderTest, SecondsMustBeWhole) {
  EXPECT_EQ(error_of("keepalive: {interval: 2500ms}\n" + minimal_config).message(),
            "must be whole seconds, got 2500ms");
  EXPECT_EQ(
      parse("keepalive: {interval: 2000ms}\n" + minimal_config).databases[0].keepalive.interval,
      seconds{2});
}

TEST(ConfigLoaderTest, BareNumberDurationNamesTheUnits) {
  const ConfigError e = error_of("ping: {interval: 5}\n" + minimal_config);
  EXPECT_EQ(e.key(), "ping.interval");
  EXPECT_NE(e.message().find("ms, s, m or h"), std::string::npos) << e.what();
}

TEST(ConfigLoaderTest, AdminListenAcceptsNamesAndIpv6) {
  EXPECT_EQ(parse("admin: {listen: \"localhost:1\"}\n" + minimal_config).admin.host, "localhost");
  const Config v6 = parse("admin: {listen: \"[::]:65535\"}\n" + minimal_config);
  EXPECT_EQ(v6.admin.host, "::");
  EXPECT_EQ(v6.admin.port, 65535);
  EXPECT_EQ(error_of("admin: {listen: \":9930\"}\n" + minimal_config).message(),
            "invalid address ':9930': missing host");
  EXPECT_EQ(error_of("admin: {listen: \"[::1\"}\n" + minimal_config).key(), "admin.listen");
}

TEST(ConfigLoaderTest, LoadConfigReportsUnreadableFile) {
  try {
    load_config("/nonexistent/config.yaml");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(),
                 "/nonexistent/config.yaml:1:1: (file): cannot read: No such file or directory");
  }
}

TEST(ConfigLoaderTest, LoadConfigUsesTheProcessEnvironment) {
  TempDir dir;
  const fs::path file =
      dir.write("config.yaml", minimal_config + "    password_env: PGVIGIL_TEST_PW\n");
  ::setenv("PGVIGIL_TEST_PW", "from-process", 1);
  const Config config = load_config(file.string());
  ::unsetenv("PGVIGIL_TEST_PW");
  EXPECT_EQ(config.source_path, file.string());
  EXPECT_EQ(config.databases[0].server.password, "from-process");
}

}  // namespace
}  // namespace pgvigil::daemon
