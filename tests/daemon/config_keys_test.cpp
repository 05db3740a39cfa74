#include "daemon/config_keys.hpp"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <fstream>
#include <set>
#include <sstream>

#include "config_test_util.hpp"
#include "daemon/config_loader.hpp"

namespace pgvigil::daemon {
namespace {

using testing_util::path_segments;

TEST(ConfigKeysTest, RowsAreWellFormed) {
  std::set<std::string_view> paths;
  for (const ConfigKey& key : config_keys()) {
    EXPECT_TRUE(paths.insert(key.path).second) << "duplicate row " << key.path;
    EXPECT_FALSE(key.default_text.empty()) << key.path;
    EXPECT_FALSE(key.description.empty()) << key.path;
    EXPECT_EQ(key.description.find('\n'), std::string_view::npos) << key.path;
    EXPECT_EQ(find_config_key(key.path), &key);
    if (key.type == KeyType::enumeration) {
      // default_text is YAML ("\"\"" for the empty choice); compare the value it spells.
      const std::string default_value = YAML::Load(std::string(key.default_text)).Scalar();
      EXPECT_NE(std::find(key.choices.begin(), key.choices.end(), default_value), key.choices.end())
          << key.path << ": default is not one of the choices";
    } else {
      EXPECT_TRUE(key.choices.empty()) << key.path;
    }
  }
  EXPECT_EQ(find_config_key("pool.nonexistent"), nullptr);
}

// Writing every literal default of the table into a file must give what the structs' own
// initialisers give: the documentation cannot drift from the code.
TEST(ConfigKeysTest, DefaultColumnMatchesTheStructDefaults) {
  YAML::Node root(YAML::NodeType::Map);
  for (const ConfigKey& key : config_keys()) {
    if (key.default_text.starts_with("(")) continue;  // prose, e.g. "(required)"
    YAML::Node node = root;
    const auto segments = path_segments(key.path, "app");
    for (std::size_t i = 0; i + 1 < segments.size(); ++i) node.reset(node[segments[i]]);
    node[segments.back()] = YAML::Load(std::string(key.default_text));
  }
  root["databases"]["app"]["user"] = "app";
  std::ostringstream text;
  text << root;
  const EnvLookup no_env = [](const std::string&) { return std::nullopt; };
  const Config from_table = parse_config(text.str(), "table.yaml", no_env);
  const Config from_structs =
      parse_config("databases:\n  app:\n    user: app\n", "structs.yaml", no_env);

  EXPECT_EQ(from_table.workers, from_structs.workers);
  EXPECT_EQ(from_table.log.level, from_structs.log.level);
  EXPECT_EQ(from_table.log.format, from_structs.log.format);
  EXPECT_EQ(from_table.admin.host, from_structs.admin.host);
  EXPECT_EQ(from_table.admin.port, from_structs.admin.port);
  EXPECT_EQ(from_table.systemd.ready_when_pools_healthy,
            from_structs.systemd.ready_when_pools_healthy);
  EXPECT_EQ(from_table.reload.watch_file, from_structs.reload.watch_file);
  const pool::PoolConfig& a = from_table.databases.at(0);
  const pool::PoolConfig& b = from_structs.databases.at(0);
  EXPECT_TRUE(a.server.hosts == b.server.hosts);
  EXPECT_EQ(a.server.target_session_attrs, b.server.target_session_attrs);
  EXPECT_EQ(a.server.dbname, b.server.dbname);
  EXPECT_EQ(a.server.password, b.server.password);
  EXPECT_EQ(a.server.tls, b.server.tls);
  EXPECT_EQ(a.server.application_name, b.server.application_name);
  EXPECT_EQ(a.keepalive, probes::KeepaliveSettings{});
  EXPECT_EQ(a.ping, probes::PingSettings{});
  const pool::PoolSettings defaults;
  EXPECT_EQ(a.pool.min_idle, defaults.min_idle);
  EXPECT_EQ(a.pool.max_size, defaults.max_size);
  EXPECT_EQ(a.pool.connect_timeout, defaults.connect_timeout);
  EXPECT_EQ(a.pool.checkout_timeout, defaults.checkout_timeout);
  EXPECT_EQ(a.pool.max_lifetime, defaults.max_lifetime);
  EXPECT_EQ(a.pool.lifetime_jitter, defaults.lifetime_jitter);
  EXPECT_EQ(a.pool.idle_timeout, defaults.idle_timeout);
  EXPECT_EQ(a.pool.validate_after_idle, defaults.validate_after_idle);
  EXPECT_EQ(a.pool.reconnect.initial_delay, defaults.reconnect.initial_delay);
  EXPECT_EQ(a.pool.reconnect.max_delay, defaults.reconnect.max_delay);
  EXPECT_EQ(a.pool.reconnect.max_delay_while_clients_wait,
            defaults.reconnect.max_delay_while_clients_wait);

  const proxy::ProxySettings proxy_defaults;
  for (const Config* config : {&from_table, &from_structs}) {
    const proxy::ProxySettings& p = config->proxy;
    EXPECT_EQ(p.listen.host, proxy_defaults.listen.host);
    EXPECT_EQ(p.listen.port, proxy_defaults.listen.port);
    EXPECT_EQ(p.listen.unix_socket_dir, proxy_defaults.listen.unix_socket_dir);
    EXPECT_EQ(p.max_client_connections, proxy_defaults.max_client_connections);
    EXPECT_EQ(p.startup_timeout, proxy_defaults.startup_timeout);
    EXPECT_EQ(p.defer_accept, proxy_defaults.defer_accept);
    EXPECT_EQ(p.pack_until_busy, proxy_defaults.pack_until_busy);
    EXPECT_EQ(p.max_message_bytes, proxy_defaults.max_message_bytes);
    EXPECT_EQ(p.auth_method, proxy_defaults.auth_method);
    EXPECT_EQ(p.users_file, proxy_defaults.users_file);
    const proxy::RouteSettings route_defaults;
    const proxy::RouteSettings& route = config->routes.at(0);
    EXPECT_EQ(route.pool_mode, route_defaults.pool_mode);
    EXPECT_EQ(route.reset_query, route_defaults.reset_query);
    EXPECT_EQ(route.auth_method, route_defaults.auth_method);
  }
}

TEST(ConfigKeysTest, ReferenceListsEveryKey) {
  const std::string reference = render_config_reference();
  EXPECT_TRUE(reference.starts_with("| Key | Type | Default | Reloadable | Description |\n"));
  for (const ConfigKey& key : config_keys()) {
    EXPECT_NE(reference.find("| `" + std::string(key.path) + "` |"), std::string::npos) << key.path;
  }
}

TEST(ConfigKeysTest, DocsFileIsUpToDate) {
  const std::string path = std::string(PGVIGIL_SOURCE_DIR) + "/docs/config-reference.md";
  std::ifstream in(path);
  ASSERT_TRUE(in) << "cannot read " << path;
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), render_config_reference())
      << path << " is stale; regenerate it with: "
      << "<build>/tests/daemon/render_config_reference > docs/config-reference.md";
}

}  // namespace
}  // namespace pgvigil::daemon
