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
  for (auto& pool : pools_) co_await pool->shutdown();
  spdlog::info("all server connections closed; exiting");
  workers_.stop();
}

int Application::run() {
  admin_->start();
  spdlog::info("pgvigil {} serving metrics on http://{}:{}/metrics with {} worker(s), {} pool(s)",
               kVersion, config_.admin.host, admin_->port(), workers_.size(), pools_.size());
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
