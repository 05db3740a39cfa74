// What a reload may change (daemon/config_diff): every key the table marks restart-only is
// refused when it changes, whatever its section, and nothing else is.
#include "daemon/config_diff.hpp"

#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>

#include "daemon/config_keys.hpp"
#include "daemon/config_loader.hpp"

namespace pgvigil::daemon {
namespace {

namespace fs = std::filesystem;

const std::string kBase = "databases:\n  app:\n    user: app\n";

Config parse(const std::string& yaml) {
  return parse_config(yaml, "reload.yaml", [](const std::string&) { return std::nullopt; });
}

// The base config with `path` (a top-level key such as "listen.startup_timeout") set to value.
std::string with_key(std::string_view path, const std::string& value) {
  YAML::Node root = YAML::Load(kBase);
  YAML::Node node = root;
  std::size_t start = 0;
  while (true) {
    const auto dot = path.find('.', start);
    const std::string segment(path.substr(start, dot - start));
    if (dot == std::string_view::npos) {
      node[segment] = value;
      break;
    }
    YAML::Node child = node[segment];
    node.reset(child);
    start = dot + 1;
  }
  YAML::Emitter out;
  out << root;
  return out.c_str();
}

class RestartOnlyKeys : public ::testing::Test {
 protected:
  RestartOnlyKeys() {
    std::string pattern = (fs::temp_directory_path() / "pgvigil-diff-XXXXXX").string();
    dir_ = ::mkdtemp(pattern.data());
    users_file_ = dir_ / "users.txt";
    std::ofstream(users_file_) << "\"u\" \"p\"\n";
    token_file_ = dir_ / "token";
    std::ofstream(token_file_) << "a-token-long-enough-to-pass\n";
  }
  ~RestartOnlyKeys() override { fs::remove_all(dir_); }

  // Values of the key's type to try, one of which differs from the default and validates.
  std::vector<std::string> candidates(const ConfigKey& key) const {
    switch (key.type) {
      case KeyType::integer:
        return {"3", "4096"};
      case KeyType::number:
        return {"0.25"};
      case KeyType::duration:
      case KeyType::whole_seconds:
        return {"3s", "7s"};
      case KeyType::string:
        return {dir_.string(), users_file_.string(), token_file_.string()};
      case KeyType::enumeration:
        return {key.choices.begin(), key.choices.end()};
      case KeyType::port:
        return {"1"};
      case KeyType::listen:
        return {"127.0.0.1:1"};
      case KeyType::boolean:
        return {"true", "false"};
      case KeyType::map:
      case KeyType::host_list:  // in database entries only, which reload
        return {};
    }
    return {};
  }

  fs::path dir_;
  fs::path users_file_;
  fs::path token_file_;
};

TEST_F(RestartOnlyKeys, EveryOneTheTableMarksIsRefusedWhenItChanges) {
  const Config current = parse(kBase);
  int checked = 0;
  for (const ConfigKey& key : config_keys()) {
    if (key.reloadable || key.type == KeyType::map) continue;
    SCOPED_TRACE(std::string(key.path));
    ASSERT_FALSE(key.path.starts_with("databases"))
        << "a restart-only key inside a database entry is not recorded by the loader";
    bool changed = false;
    for (const auto& value : candidates(key)) {
      std::optional<Config> next;
      try {
        next = parse(with_key(key.path, value));
      } catch (const ConfigError&) {
        continue;  // not valid for this key: try the next candidate
      }
      const auto refused = restart_only_change(current, *next);
      if (!refused) continue;  // the candidate was the default
      EXPECT_EQ(refused->key(), key.path) << refused->what();
      EXPECT_NE(std::string(refused->what()).find("needs a restart"), std::string::npos);
      changed = true;
      break;
    }
    EXPECT_TRUE(changed) << "no candidate value changed the key, or its change was accepted";
    ++checked;
  }
  EXPECT_GE(checked, 10);
}

TEST_F(RestartOnlyKeys, TheSameValueSpelledOtherwiseOrLeftAtItsDefaultIsNoChange) {
  const Config current = parse(kBase);
  for (const auto& yaml :
       {with_key("listen.startup_timeout", "10000ms"), with_key("listen.startup_timeout", "10s"),
        with_key("listen.address", "127.0.0.1:6432"), with_key("workers", "0")}) {
    EXPECT_FALSE(restart_only_change(current, parse(yaml)).has_value()) << yaml;
  }
}

TEST_F(RestartOnlyKeys, ReloadableKeysMayChange) {
  const Config current = parse(kBase);
  for (const auto& yaml : {with_key("ping.interval", "9s"), with_key("log.level", "debug"),
                           with_key("pool.max_size", "20")}) {
    EXPECT_FALSE(restart_only_change(current, parse(yaml)).has_value()) << yaml;
  }
}

// A reload may bring a new admin certificate, not turn HTTPS on or off (another listener).
TEST_F(RestartOnlyKeys, AdminHttpsOnOrOffNeedsARestartANewCertificateDoesNot) {
  const Config plain = parse(kBase);
  Config https = plain;
  https.admin.tls.reset(SSL_CTX_new(TLS_server_method()), SSL_CTX_free);
  Config renewed = https;
  renewed.admin.tls.reset(SSL_CTX_new(TLS_server_method()), SSL_CTX_free);
  const auto on = restart_only_change(plain, https);
  ASSERT_TRUE(on.has_value());
  EXPECT_EQ(on->key(), "admin.tls.cert_file");
  EXPECT_NE(std::string(on->what()).find("HTTPS turned on"), std::string::npos);
  EXPECT_TRUE(restart_only_change(https, plain).has_value());
  EXPECT_FALSE(restart_only_change(https, renewed).has_value());
}

TEST(DatabaseChanges, EachPartOfADatabaseIsNamedWhenItChanges) {
  const auto parse_one = [](const std::string& extra) {
    return parse("databases:\n  app:\n    user: app\n" + extra);
  };
  const Config base = parse_one("");
  struct Case {
    std::string yaml;
    std::string part;
  };
  for (const auto& [yaml, part] :
       {Case{"    sslmode: require\n", "server"}, Case{"    application_name: other\n", "server"},
        Case{"    keepalive: {count: 5}\n", "keepalive"},
        Case{"    ping: {query: \"SELECT 1\"}\n", "ping"},
        Case{"    pool: {validate_after_idle: 2s}\n", "pool"},
        Case{"    pool: {reconnect: {max_delay: 20s}}\n", "pool"},
        Case{"    reset_query: \"\"\n", "proxy"}}) {
    const Config next = parse_one(yaml);
    EXPECT_EQ(
        database_changes(base.databases[0], base.routes[0], next.databases[0], next.routes[0]),
        std::vector<std::string>{part})
        << yaml;
  }
  EXPECT_TRUE(database_changes(base.databases[0], base.routes[0], base.databases[0], base.routes[0])
                  .empty());
}

}  // namespace
}  // namespace pgvigil::daemon
