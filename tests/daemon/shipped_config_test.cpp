// The config.yaml shipped at the top of the repository: valid, complete, and showing defaults.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include "config_test_util.hpp"
#include "daemon/config_keys.hpp"
#include "daemon/config_loader.hpp"

namespace pgvigil::daemon {
namespace {

using testing_util::node_at;
using testing_util::path_segments;

constexpr const char* kShipped = PGVIGIL_SOURCE_DIR "/config.yaml";

TEST(ShippedConfigTest, ParsesAndPointsAtLocalPostgres) {
  const Config config = load_config(kShipped);
  ASSERT_EQ(config.databases.size(), 1u);
  const pool::PoolConfig& db = config.databases[0];
  EXPECT_EQ(db.name, "postgres");
  ASSERT_EQ(db.server.hosts.size(), 1u);
  EXPECT_EQ(db.server.hosts[0].host, "127.0.0.1");
  EXPECT_EQ(db.server.hosts[0].port, 5432);
  EXPECT_EQ(db.server.dbname, "postgres");
  EXPECT_EQ(db.server.user, "postgres");
  EXPECT_EQ(db.server.password, "");
  // Keep-alive agrees with TCP_USER_TIMEOUT: Linux ends a keep-alive sequence at the first probe
  // after user_timeout of silence, so user_timeout = idle + interval * count makes both timers
  // give the same answer (README, "How a dead connection is found").
  EXPECT_EQ(db.keepalive.user_timeout, db.keepalive.idle_detection_bound());
}

// Every key of the table is written out, in its section, with the table's default value.
TEST(ShippedConfigTest, ShowsEveryKeyWithItsDefault) {
  const YAML::Node root = YAML::LoadFile(kShipped);
  const auto database = node_at(root, {"databases"});
  ASSERT_TRUE(database && database->IsMap() && database->size() == 1);
  const std::string name = database->begin()->first.Scalar();

  for (const ConfigKey& key : config_keys()) {
    const auto node = node_at(root, path_segments(key.path, name));
    ASSERT_TRUE(node.has_value()) << key.path << " is missing from config.yaml";
    if (key.type == KeyType::map) {
      EXPECT_TRUE(node->IsMap()) << key.path;
      continue;
    }
    if (key.type == KeyType::host_list) {
      EXPECT_TRUE(node->IsSequence() && node->size() == YAML::Load(std::string(key.default_text)).size())
          << key.path << " in config.yaml differs from the documented default";
      continue;
    }
    if (key.default_text.starts_with("(")) continue;  // no literal default to compare
    ASSERT_TRUE(node->IsScalar()) << key.path;
    EXPECT_EQ(node->Scalar(), YAML::Load(std::string(key.default_text)).Scalar())
        << key.path << " in config.yaml differs from the documented default";
  }
}

}  // namespace
}  // namespace pgvigil::daemon
