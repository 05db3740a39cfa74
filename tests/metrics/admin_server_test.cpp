// AdminServer over real TCP on loopback: routes, keep-alive, limits, timeouts, bind errors
// and a stop() that leaves the io_context with nothing to do.

#include "metrics/admin_server.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>

#include "tests/metrics/http_client.hpp"

namespace pgvigil::metrics {
namespace {

using namespace std::chrono_literals;
using test::http_get;
using test::http_request;
using test::HttpConnection;

class AdminServerTest : public ::testing::Test {
 protected:
  void start(AdminServerOptions options = {}) {
    options.host = "127.0.0.1";
    options.port = 0;
    server_.emplace(io_, options, registry_, [this] {
      std::lock_guard lock(ready_mutex_);
      return ready_;
    });
    server_->start();
    port_ = server_->port();
    io_thread_ = std::thread([this] { io_.run(); });
  }

  // Stops the server on its own thread and waits for io_context::run() to return, which
  // proves the server left no pending work behind.
  void stop() {
    if (!io_thread_.joinable()) return;
    boost::asio::post(io_, [this] { server_->stop(); });
    io_thread_.join();
  }

  void TearDown() override { stop(); }

  void set_ready(ReadyState state) {
    std::lock_guard lock(ready_mutex_);
    ready_ = std::move(state);
  }

  boost::asio::io_context io_;
  Registry registry_{"9.9.9"};
  std::optional<AdminServer> server_;
  std::uint16_t port_ = 0;
  std::thread io_thread_;
  std::mutex ready_mutex_;
  ReadyState ready_{true, "pool app: 2 idle healthy"};
};

TEST_F(AdminServerTest, BindsAnEphemeralPort) {
  start();
  EXPECT_NE(port_, 0);
}

TEST_F(AdminServerTest, ServesMetrics) {
  registry_.add_pool("app", PoolLabelSets{{"ping_timeout"}, {"refused"}, {"idle"}, {"db:5432"}});
  start();
  const auto result = http_get("127.0.0.1", port_, "/metrics");
  EXPECT_EQ(result.status, 200);
  EXPECT_EQ(result.header("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_NE(result.body.find("pgvigil_build_info{version=\"9.9.9\"} 1\n"), std::string::npos);
  EXPECT_NE(result.body.find("pgvigil_evictions_total{pool=\"app\",reason=\"ping_timeout\","
                             "server=\"db:5432\"} 0"),
            std::string::npos)
      << result.body;
  // Scrapers may add query parameters; they do not change the route.
  EXPECT_EQ(http_get("127.0.0.1", port_, "/metrics?name[]=x").status, 200);
}

TEST_F(AdminServerTest, HealthzSaysOk) {
  start();
  const auto result = http_get("127.0.0.1", port_, "/healthz");
  EXPECT_EQ(result.status, 200);
  EXPECT_EQ(result.body, "ok\n");
}

TEST_F(AdminServerTest, ReadyzFollowsTheReadyCheck) {
  start();
  auto result = http_get("127.0.0.1", port_, "/readyz");
  EXPECT_EQ(result.status, 200);
  EXPECT_EQ(result.body, "pool app: 2 idle healthy\n");

  set_ready({false, "pool app: 0 idle, connecting (connection refused)\n"});
  result = http_get("127.0.0.1", port_, "/readyz");
  EXPECT_EQ(result.status, 503);
  EXPECT_EQ(result.body, "pool app: 0 idle, connecting (connection refused)\n");
}

TEST_F(AdminServerTest, UnknownPathIs404) {
  start();
  EXPECT_EQ(http_get("127.0.0.1", port_, "/nope").status, 404);
  EXPECT_EQ(http_get("127.0.0.1", port_, "/").status, 404);
}

TEST_F(AdminServerTest, OtherMethodsAre405) {
  start();
  for (const char* method : {"POST", "PUT", "DELETE", "HEAD"}) {
    const auto result = http_request("127.0.0.1", port_, method, "/metrics");
    EXPECT_EQ(result.status, 405) << method;
    EXPECT_EQ(result.header("allow"), "GET") << method;
  }
}

TEST_F(AdminServerTest, KeepsTheConnectionAliveBetweenRequests) {
  start();
  HttpConnection connection("127.0.0.1", port_);
  EXPECT_EQ(connection.request("GET", "/healthz").status, 200);
  EXPECT_EQ(connection.request("GET", "/metrics").status, 200);
  EXPECT_EQ(connection.request("GET", "/nope").status, 404);
  EXPECT_EQ(connection.request("GET", "/readyz").status, 200);
}

TEST_F(AdminServerTest, DropsASilentClientAfterTheRequestTimeout) {
  AdminServerOptions options;
  options.request_timeout = 200ms;
  start(options);
  HttpConnection connection("127.0.0.1", port_);
  const auto began = std::chrono::steady_clock::now();
  EXPECT_TRUE(connection.closed_by_server_within(5s));
  EXPECT_GE(std::chrono::steady_clock::now() - began, 150ms);
}

// A slow-request flood: 1,000 connections that each send half a request header and stop. Each
// new one pushes out the session that waited longest, so a probe's /healthz, whose request
// arrives whole, is answered at once instead of after the flood's request timeouts.
TEST_F(AdminServerTest, HealthzAnswersWhileAThousandClientsSendHalfAHeader) {
  start();  // the daemon's limits: 64 sessions, 10 s request timeout, 2 s header timeout
  // 1,000 client sockets and up to 64 accepted ones in this process: more than the common
  // default of 1,024 descriptors.
  rlimit files{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &files), 0);
  if (files.rlim_cur < 2048 && files.rlim_max >= 2048) {
    files.rlim_cur = 2048;
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &files), 0);
  }
  ASSERT_GE(files.rlim_cur, 2048u) << "needs 2048 open files";
  std::vector<int> flood;
  const auto close_all = [&flood] {
    for (const int fd : flood) ::close(fd);
  };
  for (int i = 0; i < 1000; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0) << "socket: " << std::strerror(errno);
    flood.push_back(fd);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port_);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0)
        << std::strerror(errno);
    const std::string half = "GET /healthz HTTP/1.1\r\nHost: pgvigil\r\n";
    ASSERT_EQ(::send(fd, half.data(), half.size(), MSG_NOSIGNAL), static_cast<ssize_t>(half.size()));
  }
  const auto began = std::chrono::steady_clock::now();
  const auto answer = http_get("127.0.0.1", port_, "/healthz", 5s);
  const auto took = std::chrono::steady_clock::now() - began;
  EXPECT_EQ(answer.status, 200);
  EXPECT_LT(took, 1s) << "took "
                      << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                      << " ms";
  close_all();
}

TEST_F(AdminServerTest, RefusesOversizedHeaders) {
  AdminServerOptions options;
  options.max_header_bytes = 1024;
  start(options);
  HttpConnection connection("127.0.0.1", port_);
  const auto result =
      connection.request("GET", "/metrics", {{"X-Padding", std::string(4096, 'x')}});
  EXPECT_EQ(result.status, 431);
  EXPECT_TRUE(connection.closed_by_server_within(5s));
}

TEST_F(AdminServerTest, RefusesOversizedBodies) {
  AdminServerOptions options;
  options.max_body_bytes = 16;
  start(options);
  HttpConnection connection("127.0.0.1", port_);
  // The declared length alone exceeds the limit, so the body need not be sent.
  const auto result = connection.request("GET", "/metrics", {{"Content-Length", "100000"}});
  EXPECT_EQ(result.status, 413);
}

TEST_F(AdminServerTest, StopClosesOpenSessionsAndLeavesNoWork) {
  start();
  HttpConnection connection("127.0.0.1", port_);
  EXPECT_EQ(connection.request("GET", "/healthz").status, 200);
  stop();  // Returns only once io_context::run() has run out of work.
  EXPECT_TRUE(connection.closed_by_server_within(5s));
  EXPECT_THROW(HttpConnection("127.0.0.1", port_, 1s), std::system_error);
}

TEST_F(AdminServerTest, BindFailureNamesTheAddress) {
  start();
  boost::asio::io_context other_io;
  AdminServerOptions options;
  options.port = port_;
  // A listener already holds the port, so even SO_REUSEADDR cannot bind it.
  AdminServer second(other_io, options, registry_, {});
  try {
    second.start();
    FAIL() << "bind to a taken port succeeded";
  } catch (const std::system_error& error) {
    EXPECT_NE(std::string(error.what()).find("127.0.0.1:" + std::to_string(port_)),
              std::string::npos)
        << error.what();
    EXPECT_EQ(error.code(), std::errc::address_in_use) << error.code().message();
  }
}

TEST(AdminServer, RejectsAHostThatIsNotALiteral) {
  boost::asio::io_context io;
  Registry registry("test");
  AdminServerOptions options;
  options.host = "localhost";
  AdminServer server(io, options, registry, {});
  try {
    server.start();
    FAIL() << "a host name was accepted";
  } catch (const std::system_error& error) {
    EXPECT_NE(std::string(error.what()).find("'localhost'"), std::string::npos) << error.what();
  }
}

TEST(AdminServer, ListensOnIpv6Loopback) {
  boost::asio::io_context io;
  Registry registry("test");
  AdminServerOptions options;
  options.host = "[::1]";
  AdminServer server(io, options, registry, [] { return ReadyState{true, "ok"}; });
  try {
    server.start();
  } catch (const std::system_error& error) {
    FAIL() << "cannot listen on IPv6 loopback: " << error.what();
  }
  std::thread io_thread([&] { io.run(); });
  int status = 0;
  std::string failure;
  try {
    status = http_get("::1", server.port(), "/healthz").status;
  } catch (const std::exception& error) {
    failure = error.what();  // Reported after the io thread is joined.
  }
  boost::asio::post(io, [&] { server.stop(); });
  io_thread.join();
  EXPECT_EQ(failure, "");
  EXPECT_EQ(status, 200);
}

}  // namespace
}  // namespace pgvigil::metrics
