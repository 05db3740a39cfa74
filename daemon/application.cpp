#include "daemon/application.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <csignal>

#include "daemon/version.hpp"

namespace pgvigil::daemon {
namespace asio = boost::asio;

Application::Application(Config config)
    : config_(std::move(config)), workers_(config_.workers), registry_(kVersion) {
  // Pools are spread over the workers; each pool lives on one worker's loop.
  int next_worker = 0;
  for (const auto& database : config_.databases) {
    auto& context = workers_.context(next_worker++ % workers_.size());
    auto metrics = registry_.add_pool(database.name, pool::pool_label_sets());
    pools_.push_back(std::make_shared<pool::Pool>(context.get_executor(), database, metrics));
  }
  metrics::AdminServerOptions admin_options;
  admin_options.host = config_.admin.host;
  admin_options.port = config_.admin.port;
  admin_ = std::make_unique<metrics::AdminServer>(workers_.context(0), admin_options, registry_,
                                                  [this] { return readiness(); });
  build_proxy();
}

void Application::build_proxy() {
  std::shared_ptr<const proxy::auth::UsersFile> users;
  if (!config_.proxy.users_file.empty()) {
    auto loaded = proxy::auth::load_users_file(config_.proxy.users_file);
    if (!loaded) throw std::runtime_error(loaded.error());
    users = std::make_shared<const proxy::auth::UsersFile>(std::move(loaded).value());
  }
  std::vector<proxy::Route> routes;
  for (std::size_t i = 0; i < config_.routes.size(); ++i) {
    proxy::Route route;
    route.settings = config_.routes[i];
    route.pool = pools_[i];
    route.metrics = registry_.add_client_pool(config_.databases[i].name);
    route.checkout_timeout = config_.databases[i].pool.checkout_timeout;
    routes.push_back(std::move(route));
  }
  proxy_ = std::make_unique<proxy::ProxyService>(config_.proxy, std::move(routes), users);
  listener_ = std::make_unique<proxy::Listener>(workers_.context(0), *proxy_);
}

Application::~Application() = default;

metrics::ReadyState Application::readiness() const {
  metrics::ReadyState state{true, {}};
  for (const auto& pool : pools_) {
    const auto status = pool->status();
    const bool healthy = status.healthy() > 0;
    state.ready = state.ready && healthy;
    state.detail += "pool " + pool->name() + ": " + std::to_string(status.healthy()) +
                    " healthy (" + std::to_string(status.idle) + " idle, " +
                    std::to_string(status.checked_out) + " in use, " +
                    std::to_string(status.connecting) + " connecting)";
    if (!healthy && !status.last_connect_failure.empty()) {
      state.detail += ", last connect failure: " + status.last_connect_failure;
    }
    state.detail += "\n";
  }
  return state;
}

asio::awaitable<void> Application::handle_signals() {
  const int signal = co_await signals_->async_wait(asio::use_awaitable);
  spdlog::info("received {}, shutting down", signal == SIGTERM ? "SIGTERM" : "SIGINT");
  admin_->stop();
  listener_->stop();
  for (auto& pool : pools_) co_await pool->shutdown();
  spdlog::info("all server connections closed; exiting");
  workers_.stop();
}

int Application::run() {
  admin_->start();
  listener_->start();
  const auto& listen = config_.proxy.listen;
  spdlog::info("pgvigil {} serving metrics on http://{}:{}/metrics with {} worker(s), {} pool(s)",
               kVersion, config_.admin.host, admin_->port(), workers_.size(), pools_.size());
  if (!listen.host.empty()) {
    spdlog::info("accepting PostgreSQL clients on {}:{}", listen.host, listener_->tcp_port());
  }
  if (!listen.unix_socket_dir.empty()) {
    spdlog::info("accepting PostgreSQL clients on {}/.s.PGSQL.{}", listen.unix_socket_dir,
                 listen.port);
  }
  for (std::size_t i = 0; i < pools_.size(); ++i) {
    const auto& database = config_.databases[i];
    spdlog::info("pool {}: server {}, min_idle={} max_size={}", database.name,
                 database.server.describe(), database.pool.min_idle, database.pool.max_size);
    pools_[i]->start();
  }
  // Installed before any loop runs, so an early signal is not lost to the default action.
  signals_.emplace(workers_.context(0), SIGTERM, SIGINT);
  asio::co_spawn(workers_.context(0), handle_signals(), asio::detached);
  workers_.run();
  return 0;
}

}  // namespace pgvigil::daemon
