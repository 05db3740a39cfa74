#include "daemon/application.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <csignal>
#include <cstdlib>

#include "daemon/available_cores.hpp"
#include "daemon/config_loader.hpp"
#include "daemon/version.hpp"
#include "pool/connection_gauges.hpp"
#include "pool/shard_config.hpp"
#include "proxy/relay/session_state.hpp"

namespace pgvigil::daemon {
namespace asio = boost::asio;

namespace {

// How long a clean shutdown waits for clients to give back their server connections.
constexpr std::chrono::seconds kShutdownDrain{10};

const char* signal_name(int signal) { return signal == SIGTERM ? "SIGTERM" : "SIGINT"; }

}  // namespace

Application::Application(Config config)
    : config_(std::move(config)), workers_(config_.workers), registry_(kVersion) {
  // Pools are spread over the workers; each pool lives on one worker's loop.
  for (const auto& database : config_.databases) pools_.push_back(make_pools(database));
  metrics::AdminServerOptions admin_options;
  admin_options.host = config_.admin.host;
  admin_options.port = config_.admin.port;
  admin_options.token = config_.admin.token;
  admin_options.tls = config_.admin.tls;
  admin_options.control = [this](std::string_view action, std::string_view database) {
    return control(action, database);
  };
  // /metrics is served on worker 0, where pools_ and retiring_ change: no lock needed.
  registry_.on_scrape([this] {
    pool::publish_connection_gauges(every_pool());
    if (proxy_) proxy_->publish_relayed();
    if (listener_) {
      const auto& placement = listener_->placement();
      for (std::size_t worker = 0; worker < placement.workers(); ++worker) {
        registry_.set_worker(worker, {placement.busy(worker), placement.accepted(worker),
                                      placement.moved_in(worker)});
      }
    }
  });
  admin_ = std::make_unique<metrics::AdminServer>(workers_.context(0), admin_options, registry_,
                                                  [this] { return readiness(); });
  build_proxy();
}

Application::Shards Application::make_pools(const pool::PoolConfig& database) {
  if (database.user_pools) return {};  // one per user instead, as users log in
  auto metrics = registry_.add_pool(database.name, pool::pool_label_sets(database.server));
  // The shards reach one server: what one learns of its health, all act on.
  auto health =
      std::make_shared<pool::ServerHealth>(database.name, database.server.describe(), metrics);
  Shards shards;
  for (int index = 0; index < database.pool.shards; ++index) {
    auto& context = workers_.context(next_worker_++ % workers_.size());
    shards.push_back(std::make_shared<pool::Pool>(
        context.get_executor(), pool::shard_config(database, index), metrics, health));
  }
  for (const auto& shard : shards) {
    std::vector<std::weak_ptr<pool::Pool>> siblings;
    for (const auto& other : shards) {
      if (other != shard) siblings.push_back(other);
    }
    shard->set_siblings(std::move(siblings));
  }
  return shards;
}

std::vector<std::shared_ptr<pool::Pool>> Application::all_pools() const {
  std::vector<std::shared_ptr<pool::Pool>> pools;
  for (const auto& shards : pools_) pools.insert(pools.end(), shards.begin(), shards.end());
  return pools;
}

std::vector<std::shared_ptr<pool::Pool>> Application::every_pool() const {
  auto pools = all_pools();
  for (const auto& [key, pool] : user_pools_) pools.push_back(pool);
  pools.insert(pools.end(), retiring_.begin(), retiring_.end());
  return pools;
}

std::vector<Application::NamedPool> Application::named_pools() const {
  std::vector<NamedPool> named;
  for (std::size_t database = 0; database < pools_.size(); ++database) {
    const auto& shards = pools_[database];
    for (std::size_t index = 0; index < shards.size(); ++index) {
      const auto& pool = shards[index];
      named.push_back({shards.size() == 1 ? pool->name()
                                          : fmt::format("{} (shard {}/{})", pool->name(), index + 1,
                                                        shards.size()),
                       pool, true, database});
    }
  }
  for (const auto& [key, pool] : user_pools_) {
    named.push_back({key.first + " (user " + key.second + ")", pool, false});
  }
  return named;
}

std::vector<proxy::Route> Application::make_routes() {
  // A sharded database has one route per shard; a client takes its worker's.
  std::vector<proxy::Route> routes;
  std::map<std::string, std::shared_ptr<proxy::auth::SecretLookup>> lookups;
  for (std::size_t i = 0; i < config_.routes.size(); ++i) {
    const auto lookup = secret_lookup(config_.databases[i]);
    if (lookup) lookups[config_.databases[i].name] = lookup;
    if (config_.databases[i].user_pools) {
      // A template: each user's route is made from it at the user's first login.
      proxy::Route route;
      route.settings = config_.routes[i];
      route.metrics =
          registry_.add_client_pool(config_.databases[i].name, proxy::relay::pin_cause_names());
      route.checkout_timeout = config_.databases[i].pool.checkout_timeout;
      route.secret_lookup = lookup;
      routes.push_back(std::move(route));
      continue;
    }
    const auto learnt = std::make_shared<proxy::LearntServer>();  // one per database
    for (const auto& shard : pools_[i]) {
      proxy::Route route;
      route.learnt = learnt;
      route.settings = config_.routes[i];
      route.pool = shard;
      route.secret_lookup = lookup;
      route.metrics =
          registry_.add_client_pool(config_.databases[i].name, proxy::relay::pin_cause_names());
      route.checkout_timeout = config_.databases[i].pool.checkout_timeout;
      routes.push_back(std::move(route));
    }
  }
  secret_lookups_ = std::move(lookups);
  return routes;
}

std::shared_ptr<proxy::auth::SecretLookup> Application::secret_lookup(
    const pool::PoolConfig& database) {
  const auto& settings = config_.proxy.auth_query;
  if (!settings.enabled()) return nullptr;
  auto server = proxy::auth::auth_server_config(database, settings);
  // Kept across a reload that changes neither the server nor auth.query: its cache and its
  // connection stay good.
  if (const auto it = secret_lookups_.find(database.name);
      it != secret_lookups_.end() && it->second->serves(server.server, settings)) {
    return it->second;
  }
  // Its connection lives on worker 0; logins on other workers hop there (SecretLookup::find).
  return std::make_shared<proxy::auth::SecretLookup>(workers_.context(0).get_executor(),
                                                     std::move(server), settings);
}

void Application::build_proxy() {
  std::shared_ptr<const proxy::auth::UsersFile> users;
  if (!config_.proxy.users_file.empty()) {
    auto loaded = proxy::auth::load_users_file(config_.proxy.users_file);
    if (!loaded) throw std::runtime_error(loaded.error());
    users = std::make_shared<const proxy::auth::UsersFile>(std::move(loaded).value());
  }
  proxy_ = std::make_unique<proxy::ProxyService>(config_.proxy, make_routes(), users, registry_);
  proxy_->set_user_route_maker([this](const proxy::Route& database, const std::string& user,
                                      const proxy::auth::LoginProof& proof) {
    return make_user_route(database, user, proof);
  }, workers_.context(0).get_executor());
  std::vector<asio::io_context*> workers;
  for (int index = 0; index < workers_.size(); ++index) workers.push_back(&workers_.context(index));
  listener_ = std::make_unique<proxy::Listener>(std::move(workers), *proxy_);
}

Application::~Application() = default;

// --- signals and shutdown -------------------------------------------------------------------

asio::awaitable<void> Application::handle_signals() {
  int signal = co_await signals_->async_wait(asio::use_awaitable);
  shutting_down_ = true;
  spdlog::info("received {}, shutting down (send it again to exit at once)", signal_name(signal));
  asio::co_spawn(workers_.context(0), shut_down(), asio::detached);
  // The clean shutdown can wait on leased connections; an impatient operator (or systemd's
  // final SIGTERM) must not have to wait for it.
  signal = co_await signals_->async_wait(asio::use_awaitable);
  const int code = signal == SIGINT ? 130 : 1;
  spdlog::warn("received {} again during shutdown; exiting at once with code {}",
               signal_name(signal), code);
  spdlog::default_logger()->flush();
  std::_Exit(code);
}

asio::awaitable<void> Application::shut_down() {
  notifier_.stopping();
  listener_->stop();
  // Drain: idle clients are told 57P01 now; a client inside a transaction finishes it first,
  // for up to shutdown_timeout; whoever is left then is cut off.
  asio::steady_timer timer(workers_.context(0));
  const auto wait_for_clients = [&](std::chrono::steady_clock::duration budget) -> asio::awaitable<void> {
    const auto deadline = std::chrono::steady_clock::now() + budget;
    while (proxy_->clients() > 0 && std::chrono::steady_clock::now() < deadline) {
      timer.expires_after(std::chrono::milliseconds(20));
      co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    }
  };
  proxy_->begin_drain();
  if (proxy_->clients() > 0) {
    spdlog::info("draining {} client(s): transactions in flight may finish within {} ms",
                 proxy_->clients(), config_.shutdown_timeout.count());
  }
  co_await wait_for_clients(config_.shutdown_timeout);
  drained_cleanly_ = proxy_->clients() == 0;
  if (!drained_cleanly_) {
    spdlog::warn("{} client(s) still in a transaction after shutdown_timeout; closing them",
                 proxy_->clients());
    proxy_->force_close();
    co_await wait_for_clients(std::chrono::seconds(2));
  }
  admin_->stop();
  const auto pools = every_pool();
  for (const auto& pool : pools) {
    auto closing = pool->shutdown();
    co_await std::move(closing);
  }
  // Leased connections close as their clients finish (a transaction's end); bounded, and a
  // second signal cuts it short.
  const auto leased = [&pools] {
    int count = 0;
    for (const auto& pool : pools) count += pool->status().checked_out;
    return count;
  };
  const auto deadline = std::chrono::steady_clock::now() + kShutdownDrain;
  if (leased() > 0) {
    spdlog::info("waiting up to {} s for {} server connection(s) leased to clients",
                 kShutdownDrain.count(), leased());
  }
  while (leased() > 0 && std::chrono::steady_clock::now() < deadline) {
    timer.expires_after(std::chrono::milliseconds(50));
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  if (const int left = leased(); left > 0) {
    spdlog::warn("{} server connection(s) still leased after {} s; exiting anyway", left,
                 kShutdownDrain.count());
  }
  spdlog::info("all server connections closed; exiting");
  workers_.stop();
}

asio::awaitable<void> Application::handle_hangups() {
  while (true) {
    const auto [error, signal] = co_await hangups_->async_wait(asio::as_tuple(asio::use_awaitable));
    if (error) co_return;
    if (shutting_down_) {
      spdlog::info("SIGHUP ignored: shutting down");
      continue;
    }
    co_await reload("SIGHUP");
  }
}

int Application::run() {
  admin_->start();
  listener_->start();
  const auto& listen = config_.proxy.listen;
  spdlog::info(
      "pgvigil {} serving metrics on {}://{}:{}/metrics with {} worker(s){}, {} pool(s)", kVersion,
      config_.admin.tls ? "https" : "http", config_.admin.host, admin_->port(), workers_.size(),
      config_.workers > 0 ? std::string()
                          : " (workers: 0, one per core: " + cores_at_start().because + ")",
      all_pools().size());
  if (!listen.host.empty()) {
    spdlog::info("accepting PostgreSQL clients on {}:{}", listen.host, listener_->tcp_port());
  }
  if (!listen.unix_socket_dir.empty()) {
    spdlog::info("accepting PostgreSQL clients on {}/.s.PGSQL.{}", listen.unix_socket_dir,
                 listen.port);
  }
  for (std::size_t i = 0; i < pools_.size(); ++i) {
    const auto& database = config_.databases[i];
    spdlog::info("pool {}: server {}, min_idle={} max_size={}{}", database.name,
                 database.server.describe(), database.pool.min_idle, database.pool.max_size,
                 database.pool.shards > 1
                     ? fmt::format(" split into {} shards on {} worker(s)", database.pool.shards,
                                   std::min<std::size_t>(database.pool.shards, workers_.size()))
                     : std::string());
    if (database.pool.shards > static_cast<int>(workers_.size())) {
      spdlog::warn("pool {}: pool.shards={} exceeds workers={}: shards share workers, which only "
                   "splits the pool without using more cores",
                   database.name, database.pool.shards, workers_.size());
    }
    for (const auto& pool : pools_[i]) pool->start();
  }
  // Installed before any loop runs, so an early signal is not lost to the default action
  // (SIGHUP's would end the process).
  signals_.emplace(workers_.context(0), SIGTERM, SIGINT);
  hangups_.emplace(workers_.context(0), SIGHUP);
  config_stamp_ = config_stamp();
  auto& home = workers_.context(0);
  asio::co_spawn(home, handle_signals(), asio::detached);
  asio::co_spawn(home, handle_hangups(), asio::detached);
  asio::co_spawn(home, watch_config_file(), asio::detached);
  if (notifier_.enabled()) {
    asio::co_spawn(home, report_status(), asio::detached);
    if (const auto interval = notifier_.watchdog_interval()) {
      spdlog::info("systemd watchdog: every event loop answers within {} ms",
                   std::chrono::duration_cast<std::chrono::milliseconds>(*interval / 2).count());
      asio::co_spawn(home, feed_watchdog(), asio::detached);
    }
    if (!config_.systemd.ready_when_pools_healthy) {
      ready_sent_ = true;
      notifier_.ready();  // the listeners are bound: clients can connect from now on
    } else {
      spdlog::info("systemd: READY=1 once every pool has a healthy server connection");
    }
  }
  workers_.run();
  // 1 tells a supervisor that clients had to be cut off mid-transaction at shutdown_timeout.
  return drained_cleanly_ ? 0 : 1;
}

}  // namespace pgvigil::daemon
