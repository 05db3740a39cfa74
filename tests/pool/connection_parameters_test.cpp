#include "pool/connection_parameters.hpp"

#include <gtest/gtest.h>

#include <map>

namespace pgvigil::pool {
namespace {

std::map<std::string, std::string> as_map(const ConnectionParameters& params) {
  return {params.begin(), params.end()};
}

PoolConfig config() {
  PoolConfig config;
  config.name = "app";
  config.server.hosts = {{"db.internal", 6543}};
  config.server.dbname = "appdb";
  config.server.user = "app";
  config.keepalive = {std::chrono::seconds(7), std::chrono::seconds(3), 4,
                      std::chrono::milliseconds(19000)};
  return config;
}

TEST(ConnectionParameters, CarryThePerSocketKeepaliveOptions) {
  const auto params = as_map(connection_parameters(config(), config().server.hosts[0], "10.1.2.3"));
  EXPECT_EQ(params.at("keepalives"), "1");
  EXPECT_EQ(params.at("keepalives_idle"), "7");
  EXPECT_EQ(params.at("keepalives_interval"), "3");
  EXPECT_EQ(params.at("keepalives_count"), "4");
  EXPECT_EQ(params.at("tcp_user_timeout"), "19000");
}

TEST(ConnectionParameters, ConnectToTheResolvedAddressAndKeepTheNameForTls) {
  const auto params = as_map(connection_parameters(config(), config().server.hosts[0], "10.1.2.3"));
  EXPECT_EQ(params.at("hostaddr"), "10.1.2.3");
  EXPECT_EQ(params.at("host"), "db.internal");
  EXPECT_EQ(params.at("port"), "6543");
  EXPECT_EQ(params.at("dbname"), "appdb");
}

TEST(ConnectionParameters, PasswordOnlyWhenThereIsOne) {
  auto with = config();
  with.server.password = "s3cret";
  EXPECT_EQ(as_map(connection_parameters(with, with.server.hosts[0], "10.1.2.3")).at("password"), "s3cret");
  EXPECT_EQ(as_map(connection_parameters(config(), config().server.hosts[0], "10.1.2.3")).count("password"), 0u);
}

TEST(ConnectionParameters, UnixSocketsHaveNoTcpOptions) {
  auto unix_socket = config();
  unix_socket.server.hosts = {{"/run/postgresql", 5432}};
  const auto params = as_map(connection_parameters(unix_socket, unix_socket.server.hosts[0], ""));
  EXPECT_EQ(params.count("keepalives"), 0u);
  EXPECT_EQ(params.count("tcp_user_timeout"), 0u);
  EXPECT_EQ(params.count("hostaddr"), 0u);
}

TEST(ConnectionParameters, TlsOptionsPassThrough) {
  auto tls = config();
  tls.server.tls = {{"sslmode", "verify-full"}, {"sslrootcert", "/etc/ca.pem"}};
  const auto params = as_map(connection_parameters(tls, tls.server.hosts[0], "10.1.2.3"));
  EXPECT_EQ(params.at("sslmode"), "verify-full");
  EXPECT_EQ(params.at("sslrootcert"), "/etc/ca.pem");
}

TEST(ServerEndpoint, DescriptionNeverShowsThePassword) {
  auto with = config();
  with.server.password = "s3cret";
  EXPECT_EQ(with.server.describe(), "db.internal:6543/appdb as app");
}

TEST(ServerEndpoint, DescriptionNamesEveryHost) {
  auto several = config();
  several.server.hosts = {{"db1", 5432}, {"::1", 5433}, {"/run/postgresql", 5434}};
  EXPECT_EQ(several.server.describe(),
            "db1:5432,[::1]:5433,/run/postgresql/.s.PGSQL.5434/appdb as app");
}

TEST(ConnectionParameters, GoToTheChosenHostOnly) {
  auto several = config();
  several.server.hosts = {{"db1", 5432}, {"db2", 5433}};
  const auto params = as_map(connection_parameters(several, several.server.hosts[1], "10.0.0.2"));
  EXPECT_EQ(params.at("host"), "db2");
  EXPECT_EQ(params.at("port"), "5433");
  EXPECT_EQ(params.at("hostaddr"), "10.0.0.2");
}

}  // namespace
}  // namespace pgvigil::pool
