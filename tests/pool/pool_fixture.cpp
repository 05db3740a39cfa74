#include "tests/pool/pool_fixture.hpp"

#include "pool/connection_gauges.hpp"

#include <boost/asio/co_spawn.hpp>
#include <future>

#include "tests/support/prometheus_text.hpp"

namespace pgvigil::pool {
namespace asio = boost::asio;

std::unique_ptr<testing::PgCluster> PoolFixture::shared_server_;

void PoolFixture::SetUpTestSuite() { shared_server_ = testing::PgCluster::start_new(); }
void PoolFixture::TearDownTestSuite() { shared_server_.reset(); }

void PoolFixture::SetUp() {
  application_name_ = std::string("pgvigil_") +
                      ::testing::UnitTest::GetInstance()->current_test_info()->name();
  if (application_name_.size() > 60) application_name_.resize(60);
  guard_.emplace(io_.get_executor());
  loop_ = std::thread([this] { io_.run(); });
}

void PoolFixture::TearDown() {
  if (pool_) {
    std::promise<void> done;
    asio::co_spawn(io_, pool_->shutdown(), [&done](std::exception_ptr) { done.set_value(); });
    done.get_future().wait_for(std::chrono::seconds(10));
  }
  guard_.reset();
  io_.stop();
  loop_.join();
}

PoolConfig PoolFixture::fast_config(const testing::PgCluster& server) const {
  PoolConfig config;
  config.name = "app";
  config.server.hosts = {{server.host(), server.port()}};
  config.server.dbname = "postgres";
  config.server.user = "postgres";
  config.server.application_name = application_name_;
  config.pool.min_idle = 2;
  config.pool.max_size = 4;
  config.pool.connect_timeout = Milliseconds(2000);
  config.pool.reconnect = {Milliseconds(100), Milliseconds(1000), Milliseconds(200)};
  config.keepalive = {std::chrono::seconds(3), std::chrono::seconds(1), 2,
                      std::chrono::milliseconds(5000)};
  config.ping.interval = Milliseconds(1000);
  config.ping.timeout = Milliseconds(300);
  return config;
}

std::shared_ptr<Pool> PoolFixture::start_pool(PoolConfig config) {
  auto metrics = registry_.add_pool(config.name, pool_label_sets(config.server));
  pool_ = std::make_shared<Pool>(io_.get_executor(), std::move(config), metrics);
  // As the daemon does: the connection gauges are set from the pool's counts when read.
  registry_.on_scrape([this] { publish_connection_gauges({pool_}); });
  pool_->start();
  return pool_;
}

CheckoutResult PoolFixture::checkout(Milliseconds timeout) {
  std::promise<CheckoutResult> result;
  asio::co_spawn(io_, pool_->checkout(timeout),
                 [&result](std::exception_ptr error, CheckoutResult value) {
                   if (error) {
                     result.set_exception(error);
                   } else {
                     result.set_value(std::move(value));
                   }
                 });
  return result.get_future().get();
}

double PoolFixture::metric(const std::string& name,
                           const std::map<std::string, std::string>& labels) const {
  return testing::sample_value(registry_.serialize(), name, labels).value_or(-1);
}

double PoolFixture::evictions(const std::string& reason) const {
  return metric("pgvigil_evictions_total", {{"pool", "app"}, {"reason", reason}});
}

std::vector<pid_t> PoolFixture::backends(const testing::PgCluster& server) const {
  return server.backend_pids(application_name_);
}

}  // namespace pgvigil::pool
