// A database entry's servers: host and port, or a hosts list, and target_session_attrs.
#include <gtest/gtest.h>

#include "daemon/config_keys.hpp"
#include "daemon/config_loader.hpp"

namespace pgvigil::daemon {
namespace {

const EnvLookup kNoEnv = [](const std::string&) { return std::nullopt; };

pool::ServerEndpoint server_of(const std::string& entry_keys) {
  return parse_config("databases:\n  app:\n    user: app\n" + entry_keys, "test.yaml", kNoEnv)
      .databases.at(0)
      .server;
}

std::string error_text_of(const std::string& entry_keys) {
  try {
    parse_config("databases:\n  app:\n    user: app\n" + entry_keys, "test.yaml", kNoEnv);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "parsed without error";
}

TEST(ConfigHosts, OneHostIsAnyRoleByDefault) {
  const auto server = server_of("    host: db.internal\n    port: 6543\n");
  EXPECT_TRUE(server.hosts == (std::vector<pool::ServerHost>{{"db.internal", 6543}}));
  EXPECT_EQ(server.target_session_attrs, pool::TargetSessionAttrs::any);
}

TEST(ConfigHosts, SeveralHostsWantAWritableServerByDefault) {
  const auto server =
      server_of("    port: 6000\n    hosts: [\"db1:5432\", db2, \"[::1]:5433\", /run/pg]\n");
  EXPECT_TRUE(server.hosts == (std::vector<pool::ServerHost>{
                                  {"db1", 5432}, {"db2", 6000}, {"::1", 5433}, {"/run/pg", 6000}}));
  EXPECT_EQ(server.target_session_attrs, pool::TargetSessionAttrs::read_write);
}

TEST(ConfigHosts, TargetSessionAttrsAsLibpqSpellsThem) {
  EXPECT_EQ(server_of("    hosts: [a, b]\n    target_session_attrs: prefer-standby\n")
                .target_session_attrs,
            pool::TargetSessionAttrs::prefer_standby);
  EXPECT_EQ(server_of("    target_session_attrs: standby\n").target_session_attrs,
            pool::TargetSessionAttrs::standby);
  EXPECT_EQ(
      error_text_of("    target_session_attrs: read_write\n"),
      "test.yaml:4:27: databases.app.target_session_attrs: unknown value 'read_write' "
      "(expected one of: \"\", any, read-write, read-only, primary, standby, prefer-standby)");
}

TEST(ConfigHosts, EveryChoiceOfTheKeyTableIsATarget) {
  const ConfigKey* key = find_config_key("databases.<name>.target_session_attrs");
  ASSERT_NE(key, nullptr);
  for (const auto choice : key->choices) {
    if (choice.empty()) continue;  // "": the default by host count
    EXPECT_TRUE(pool::parse_target_session_attrs(choice).has_value()) << choice;
  }
}

TEST(ConfigHosts, BadListsNameTheEntry) {
  EXPECT_EQ(error_text_of("    host: db1\n    hosts: [db2]\n"),
            "test.yaml:5:12: databases.app.hosts: set host or hosts, not both (put db1 in hosts)");
  EXPECT_EQ(error_text_of("    hosts: [db1, \"db2:99999\"]\n"),
            "test.yaml:4:18: databases.app.hosts: invalid entry 'db2:99999': port must be a "
            "number from 1 to 65535");
  EXPECT_EQ(error_text_of("    hosts: [db1, \"db1:5432\"]\n"),
            "test.yaml:4:18: databases.app.hosts: invalid entry 'db1:5432': listed twice");
  EXPECT_EQ(error_text_of("    hosts: \"db1,db2\"\n"),
            "test.yaml:4:12: databases.app.hosts: expected a list such as [\"db1:5432\", "
            "\"db2:5432\"], got a scalar");
  EXPECT_EQ(error_text_of("    hosts: [\"::1:5432\"]\n"),
            "test.yaml:4:13: databases.app.hosts: invalid entry '::1:5432': put an IPv6 address "
            "in brackets, e.g. [::1]:5432");
}

TEST(ConfigHosts, AnEmptyListKeepsHostAndPort) {
  const auto server = server_of("    host: db.internal\n    hosts: []\n");
  EXPECT_TRUE(server.hosts == (std::vector<pool::ServerHost>{{"db.internal", 5432}}));
}

}  // namespace
}  // namespace pgvigil::daemon
