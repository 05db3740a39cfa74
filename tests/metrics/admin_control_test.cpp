// The control requests of the admin endpoint (POST /pause, /resume): who may send them, what
// they must name, and what the handler's answer becomes. Routed without sockets, except the
// last test, which shows that a wildcard address is not taken for loopback.

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "metrics/admin_routes.hpp"
#include "metrics/admin_server.hpp"
#include "tests/metrics/http_client.hpp"

namespace pgvigil::metrics {
namespace {

namespace http = boost::beast::http;

constexpr const char* kToken = "s3cret-token-of-some-length";

class AdminControlTest : public ::testing::Test {
 protected:
  HttpResponse send(http::verb method, const std::string& target,
                    const std::string& authorization = "") {
    HttpRequest request{method, target, 11};
    if (!authorization.empty()) request.set(http::field::authorization, authorization);
    return route_admin_request(request, registry_, {}, control_);
  }

  void SetUp() override {
    control_.handler = [this](std::string_view action, std::string_view database) {
      calls_.push_back(std::string(action) + " " + std::string(database));
      if (database != "app") return ControlAnswer{http::status::not_found, "no such database"};
      return ControlAnswer{http::status::ok, "database app " + std::string(action) + "d", 3};
    };
  }

  Registry registry_{"9.9.9"};
  AdminControl control_;
  std::vector<std::string> calls_;
};

TEST_F(AdminControlTest, LoopbackTakesAPauseWithoutAToken) {
  const auto response = send(http::verb::post, "/pause?database=app");
  EXPECT_EQ(response.result(), http::status::ok);
  EXPECT_EQ(response.body(), "database app paused\n");
  EXPECT_EQ(response["X-Pgvigil-Open-Connections"], "3");
  EXPECT_EQ(calls_, std::vector<std::string>{"pause app"});
  EXPECT_EQ(send(http::verb::post, "/resume?x=1&database=app").result(), http::status::ok);
  EXPECT_EQ(calls_.back(), "resume app");
}

TEST_F(AdminControlTest, GetReadsTheStateWithoutATokenAndOtherMethodsAreRefused) {
  control_.on_loopback = false;
  control_.token = kToken;
  const auto state = send(http::verb::get, "/pause?database=app");
  EXPECT_EQ(state.result(), http::status::ok);
  EXPECT_EQ(calls_, std::vector<std::string>{"status app"});
  const auto response = send(http::verb::put, "/pause?database=app");
  EXPECT_EQ(response.result(), http::status::method_not_allowed);
  EXPECT_EQ(response[http::field::allow], "GET, POST");
  EXPECT_EQ(calls_.size(), 1u);
}

TEST_F(AdminControlTest, ARequestFromAWebPageIsRefusedEvenOnLoopback) {
  HttpRequest request{http::verb::post, "/pause?database=app", 11};
  request.set(http::field::origin, "http://evil.example");
  EXPECT_EQ(route_admin_request(request, registry_, {}, control_).result(),
            http::status::forbidden);
  EXPECT_TRUE(calls_.empty());
}

TEST_F(AdminControlTest, TheDatabaseMustBeNamedAndKnown) {
  EXPECT_EQ(send(http::verb::post, "/pause").result(), http::status::bad_request);
  EXPECT_EQ(send(http::verb::post, "/pause?database=").result(), http::status::bad_request);
  EXPECT_TRUE(calls_.empty());
  const auto unknown = send(http::verb::post, "/pause?database=other");
  EXPECT_EQ(unknown.result(), http::status::not_found);
  EXPECT_EQ(unknown.body(), "no such database\n");
}

TEST_F(AdminControlTest, AnEndpointOffLoopbackWithoutATokenRefusesControl) {
  control_.on_loopback = false;
  const auto response = send(http::verb::post, "/pause?database=app");
  EXPECT_EQ(response.result(), http::status::forbidden);
  EXPECT_NE(response.body().find("admin.token_file"), std::string::npos) << response.body();
  // A token brought where none is configured matches nothing.
  EXPECT_EQ(send(http::verb::post, "/pause?database=app", "Bearer anything").result(),
            http::status::unauthorized);
  EXPECT_TRUE(calls_.empty());
  // Reading stays open to scrapers.
  EXPECT_EQ(send(http::verb::get, "/healthz").result(), http::status::ok);
}

TEST_F(AdminControlTest, AnEndpointOffLoopbackTakesTheRightTokenOnly) {
  control_.on_loopback = false;
  control_.token = kToken;
  const auto missing = send(http::verb::post, "/pause?database=app");
  EXPECT_EQ(missing.result(), http::status::unauthorized);
  EXPECT_EQ(missing[http::field::www_authenticate], "Bearer");
  EXPECT_EQ(send(http::verb::post, "/pause?database=app", "Bearer wrong").result(),
            http::status::unauthorized);
  EXPECT_EQ(send(http::verb::post, "/pause?database=app", std::string("Basic ") + kToken).result(),
            http::status::unauthorized);
  EXPECT_TRUE(calls_.empty());
  EXPECT_EQ(send(http::verb::post, "/pause?database=app", std::string("Bearer ") + kToken).result(),
            http::status::ok);
  EXPECT_EQ(calls_, std::vector<std::string>{"pause app"});
}

TEST_F(AdminControlTest, AConfiguredTokenIsRequiredOnLoopbackToo) {
  control_.token = kToken;
  EXPECT_EQ(send(http::verb::post, "/resume?database=app").result(), http::status::unauthorized);
  EXPECT_EQ(send(http::verb::post, "/resume?database=app", "Bearer wrong").result(),
            http::status::unauthorized);
  EXPECT_TRUE(calls_.empty());
  EXPECT_EQ(send(http::verb::post, "/resume?database=app", std::string("Bearer ") + kToken).result(),
            http::status::ok);
}

TEST(AdminControlServer, AWildcardAddressIsNotLoopback) {
  boost::asio::io_context io;
  Registry registry{"9.9.9"};
  AdminServerOptions options;
  options.host = "0.0.0.0";
  options.port = 0;
  int calls = 0;
  options.control = [&calls](std::string_view, std::string_view) {
    ++calls;
    return ControlAnswer{http::status::ok, "done"};
  };
  AdminServer server(io, options, registry, {});
  server.start();
  std::thread loop([&io] { io.run(); });
  test::HttpResult result;
  std::string failure;
  try {
    result = test::http_request("127.0.0.1", server.port(), "POST", "/pause?database=app");
  } catch (const std::exception& error) {
    failure = error.what();
  }
  boost::asio::post(io, [&server] { server.stop(); });
  loop.join();
  ASSERT_EQ(failure, "");
  EXPECT_EQ(result.status, 403) << result.body;
  EXPECT_EQ(calls, 0);
}

}  // namespace
}  // namespace pgvigil::metrics
