// config.yaml's client-facing keys: listen, auth and the per-database proxy settings, read into
// the proxy's settings and one route per database.

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "daemon/config_loader.hpp"
#include "tests/daemon/config_parse_util.hpp"

namespace pgvigil::daemon {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(ConfigLoaderTest, ProxyDefaultsAndOneRoutePerDatabaseInOrder) {
  const Config config = parse("databases:\n  zeta:\n    user: z\n  alpha:\n    user: a\n");
  EXPECT_EQ(config.proxy.listen.host, "127.0.0.1");
  EXPECT_EQ(config.proxy.listen.port, 6432);
  EXPECT_EQ(config.proxy.listen.unix_socket_dir, "");
  EXPECT_EQ(config.proxy.startup_timeout, seconds(10));
  EXPECT_EQ(config.proxy.defer_accept, seconds(10));
  EXPECT_EQ(config.proxy.pack_until_busy, 0.7);
  EXPECT_EQ(config.proxy.max_message_bytes, 268435456u);
  ASSERT_EQ(config.routes.size(), 2u);
  EXPECT_EQ(config.routes[0].database, "zeta");
  EXPECT_EQ(config.routes[1].database, "alpha");
  EXPECT_EQ(config.routes[0].pool_mode, proxy::PoolMode::transaction);
  EXPECT_EQ(config.routes[0].reset_query, "DISCARD ALL");
  EXPECT_EQ(config.routes[0].auth_method, proxy::AuthMethod::trust);
}

TEST(ConfigLoaderTest, ListenAndAuthKeys) {
  TempDir dir;
  dir.write("users.txt", "\"app\" \"secret\"\n");
  const fs::path file = dir.write("config.yaml",
                                  "listen:\n"
                                  "  address: \"[::1]:7000\"\n"
                                  "  unix_socket_dir: /run/pgvigil\n"
                                  "  max_client_connections: 7\n"
                                  "  startup_timeout: 1500ms\n"
                                  "  defer_accept: 0\n"
                                  "  pack_until_busy: 0\n"
                                  "  max_message_bytes: 4096\n"
                                  "auth: {method: md5, users_file: users.txt}\n"
                                  "databases:\n"
                                  "  a: {user: a, pool_mode: session, reset_query: \"\"}\n"
                                  "  b: {user: b, auth_method: scram-sha-256}\n"
                                  "  c: {user: c, auth_method: trust}\n");
  const Config config = load_config(file.string());
  EXPECT_EQ(config.proxy.listen.host, "::1");
  EXPECT_EQ(config.proxy.listen.port, 7000);
  EXPECT_EQ(config.proxy.listen.unix_socket_dir, "/run/pgvigil");
  EXPECT_EQ(config.proxy.max_client_connections, 7);
  EXPECT_EQ(config.proxy.startup_timeout, milliseconds(1500));
  EXPECT_EQ(config.proxy.defer_accept, seconds(0));
  EXPECT_EQ(config.proxy.pack_until_busy, 0.0);
  EXPECT_EQ(config.proxy.max_message_bytes, 4096u);
  EXPECT_EQ(config.proxy.auth_method, proxy::AuthMethod::md5);
  EXPECT_EQ(config.proxy.users_file, (dir.path() / "users.txt").string());
  ASSERT_EQ(config.routes.size(), 3u);
  EXPECT_EQ(config.routes[0].pool_mode, proxy::PoolMode::session);
  EXPECT_EQ(config.routes[0].reset_query, "");
  EXPECT_EQ(config.routes[0].auth_method, proxy::AuthMethod::md5);  // inherited
  EXPECT_EQ(config.routes[1].auth_method, proxy::AuthMethod::scram_sha_256);
  EXPECT_EQ(config.routes[2].auth_method, proxy::AuthMethod::trust);
}

TEST(ConfigLoaderTest, PackUntilBusyIsAShareOfOneCore) {
  for (const char* value : {"1.5", "-0.1"}) {
    const ConfigError error =
        error_of(std::string("listen:\n  pack_until_busy: ") + value + "\n" + minimal_config);
    EXPECT_EQ(error.key(), "listen.pack_until_busy") << value;
    EXPECT_EQ(error.line(), 2) << value;
    EXPECT_NE(std::string(error.what()).find("from 0 to 1"), std::string::npos) << error.what();
  }
}

TEST(ConfigLoaderTest, EmptyAddressTurnsTcpOffButNotBothListeners) {
  const Config unix_only =
      parse("listen: {address: \"\", unix_socket_dir: /tmp}\n" + minimal_config);
  EXPECT_EQ(unix_only.proxy.listen.host, "");
  EXPECT_EQ(unix_only.proxy.listen.port, 6432);  // still names .s.PGSQL.6432
  const ConfigError error = error_of("listen: {address: \"\"}\n" + minimal_config);
  EXPECT_EQ(error.key(), "listen");
  EXPECT_EQ(error.line(), 1);
}

TEST(ConfigLoaderTest, UsersFileOnlyRequiredWhenSomeDatabaseNeedsPasswords) {
  // Every database overrides md5 with trust: nothing to look up.
  EXPECT_NO_THROW(parse("auth: {method: md5}\ndatabases: {a: {user: a, auth_method: trust}}\n"));
  EXPECT_EQ(error_of("auth: {method: md5}\n" + minimal_config).key(), "auth.users_file");
  EXPECT_EQ(error_of("databases: {a: {user: a, auth_method: md5}}\n").key(),
            "databases.a.auth_method");
}

TEST(ConfigLoaderTest, AuthQueryReplacesTheUsersFile) {
  const Config config = parse(
      "auth: {method: scram-sha-256, query: {user: lookup, password_env: LOOKUP_PW, "
      "sql: \"SELECT * FROM f($1)\", cache_time: 5s}}\n" +
          minimal_config,
      "test.yaml", {{"LOOKUP_PW", "lookup-secret"}});
  const auto& query = config.proxy.auth_query;
  EXPECT_TRUE(query.enabled());
  EXPECT_EQ(query.user, "lookup");
  EXPECT_EQ(query.password, "lookup-secret");
  EXPECT_EQ(query.sql, "SELECT * FROM f($1)");
  EXPECT_EQ(query.cache_time, std::chrono::seconds(5));
  EXPECT_EQ(config.routes[0].auth_method, proxy::AuthMethod::scram_sha_256);

  const Config defaults = parse("auth: {method: md5, query: {user: lookup}}\n" + minimal_config);
  EXPECT_EQ(defaults.proxy.auth_query.sql,
            "SELECT usename, passwd FROM pg_shadow WHERE usename = $1");
  EXPECT_EQ(defaults.proxy.auth_query.cache_time, std::chrono::seconds(60));
  EXPECT_FALSE(parse(minimal_config).proxy.auth_query.enabled());

  EXPECT_EQ(
      error_of("auth: {query: {user: a, sql: \"SELECT passwd FROM pg_shadow\"}}\n" + minimal_config)
          .key(),
      "auth.query.sql");
  EXPECT_EQ(error_of("auth: {query: {user: a, cache_time: -1s}}\n" + minimal_config).key(),
            "auth.query.cache_time");
  EXPECT_EQ(error_of("auth: {query: {user: a, password_env: MISSING}}\n" + minimal_config).key(),
            "auth.query.password_env");
  EXPECT_EQ(
      error_of("auth: {query: {user: a, password_file: /nonexistent/pw}}\n" + minimal_config).key(),
      "auth.query.password_file");
}

TEST(ConfigLoaderTest, UserPoolsLogInAsEachClientWithTheUsersFilesPasswords) {
  const std::string auth = "auth: {method: scram-sha-256, users_file: /dev/null}\n";
  const Config config = parse(auth + "databases: {app: {user_pools: true}}\n");
  EXPECT_TRUE(config.databases[0].user_pools);
  EXPECT_TRUE(config.routes[0].user_pools);
  EXPECT_EQ(config.databases[0].server.user, "");
  EXPECT_FALSE(parse(minimal_config).databases[0].user_pools);

  EXPECT_EQ(error_of(auth + "databases: {app: {user_pools: true, user: app}}\n").key(),
            "databases.app.user");
  EXPECT_EQ(error_of(auth + "databases: {app: {user_pools: true, password_env: PW}}\n", "test.yaml",
                     {{"PW", "secret"}})
                .key(),
            "databases.app.password_env");
  EXPECT_EQ(error_of("databases: {app: {user_pools: true}}\n").key(), "databases.app.user_pools")
      << "the roles' passwords come from the users file";
}

}  // namespace
}  // namespace pgvigil::daemon
