// Application: per-user pools (databases.<name>.user_pools). A per-user database has no pool of
// its own; each role gets one at its first login, logging in to the server as that role: with
// the plain password the users file holds for it, or else with what the client's login proved
// (its SCRAM keys or md5 hash against the server's own verifier, from auth.query or copied into
// the users file), through pgvigil's own login (proxy/login/). Run on worker 0, like everything
// that reads user_pools_: sessions hop there to find their pool, and reloads run there.
#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include "daemon/application.hpp"
#include "daemon/config_diff.hpp"

namespace pgvigil::daemon {
namespace asio = boost::asio;

namespace {

const pool::PoolConfig* find_database(const Config& config, const std::string& name) {
  for (const auto& database : config.databases) {
    if (database.name == name) return &database;
  }
  return nullptr;
}

// The database's settings, logging in as `user`. One pool, not shards: a role's clients are
// usually few, and each role already has a pool of its own. No min_idle: a role's pool opens
// connections as its clients ask and closes each after pool.idle_timeout unused (0: never). Kept
// warm, every role that ever logged in would hold min_idle server connections for good, and 50
// roles with the shipped min_idle (2) would take all of PostgreSQL's default max_connections (100).
pool::PoolConfig user_pool_config(const pool::PoolConfig& database, const std::string& user,
                                  const std::string& password,
                                  std::shared_ptr<const pool::ServerLogin> proof) {
  pool::PoolConfig config = database;
  config.server.user = user;
  config.server.password = password;
  config.server.login = pool::ServerCredential{std::move(proof)};
  config.pool.shards = 1;
  config.pool.min_idle = 0;
  return config;
}

}  // namespace

std::variant<std::shared_ptr<proxy::Route>, proxy::ClientError> Application::make_user_route(
    const proxy::Route& database, const std::string& user, const proxy::auth::LoginProof& proof) {
  const auto& name = database.settings.database;
  const auto* config = find_database(config_, name);
  if (config == nullptr || !config->user_pools) {
    return proxy::ClientError{proxy::sqlstate::kAdminShutdown,
                              "database \"" + name + "\" was reconfigured while logging in", "",
                              "Connect again."};
  }
  const auto* users = proxy_->users();
  const auto* entry = users != nullptr ? users->find(user) : nullptr;
  const std::pair key{name, user};
  UserLogin login;
  if (entry != nullptr && entry->kind == proxy::auth::SecretKind::plain) {
    login.password = entry->secret;  // what libpq logs in with
  } else if (!proof.empty()) {
    const auto known = user_logins_.find(key);
    if (known != user_logins_.end() && known->second.proof &&
        known->second.proof->proof() == proof) {
      login = known->second;  // the same proof: nothing changes (a route remade by a reload)
    } else {
      login.proof = std::make_shared<const proxy::login::ProofLogin>(proof);
    }
  } else {
    // The client has proved who it is, but not in a way pgvigil can repeat to the server.
    return proxy::ClientError{
        proxy::sqlstate::kInvalidAuthorization,
        "pgvigil has no way to log in to database \"" + name + "\" as \"" + user + "\"",
        "Queries in \"" + name + "\" run as each client's own role (user_pools).",
        "Log in with SCRAM or md5 against the server's own password (auth.query, or its verifier "
        "in auth.users_file), or list the role's plain password in auth.users_file."};
  }
  auto& pool = user_pools_[key];
  if (pool == nullptr) {
    pool = make_user_pool(*config, user, login);
  } else if (login.proof && login.proof != user_logins_[key].proof) {
    // The role's password changed on the server: connections opened from now on log in with
    // what this login proved. Those already open stay (ServerCredential): they are logged in.
    asio::co_spawn(
        workers_.context(0),
        pool->update_config(user_pool_config(*config, user, login.password, login.proof)),
        asio::detached);
  }
  user_logins_[key] = login;
  auto route = std::make_shared<proxy::Route>();
  route->settings = database.settings;
  route->pool = pool;
  route->metrics = database.metrics;
  route->checkout_timeout = database.checkout_timeout;
  route->secret_lookup = database.secret_lookup;
  return route;
}

std::shared_ptr<pool::Pool> Application::make_user_pool(const pool::PoolConfig& database,
                                                        const std::string& user,
                                                        const UserLogin& login) {
  auto config = user_pool_config(database, user, login.password, login.proof);
  auto metrics = registry_.add_pool(database.name, pool::pool_label_sets(config.server), user);
  auto& context = workers_.context(next_worker_++ % workers_.size());
  auto pool = std::make_shared<pool::Pool>(context.get_executor(), std::move(config), metrics);
  pool->start();
  // A pause holds every pool of the database, this one too.
  if (paused_databases_.contains(database.name)) pool->pause();
  spdlog::info("pool {}: opened for user {} (user_pools, logging in with {})", database.name, user,
               login.proof ? "the client's proof" : "the users file's password");
  return pool;
}

std::vector<std::shared_ptr<pool::Pool>> Application::user_pools_of(
    const std::string& database) const {
  std::vector<std::shared_ptr<pool::Pool>> pools;
  for (const auto& [key, pool] : user_pools_) {
    if (key.first == database) pools.push_back(pool);
  }
  return pools;
}

asio::awaitable<void> Application::reload_user_pools(const Config& next) {
  for (auto it = user_pools_.begin(); it != user_pools_.end();) {
    const auto& [database, user] = it->first;
    const auto* before = find_database(config_, database);
    const auto* after = find_database(next, database);
    if (after == nullptr || !after->user_pools) {
      retiring_.push_back(it->second);
      asio::co_spawn(workers_.context(0), retire_user_pool(it->second, user), asio::detached);
      user_logins_.erase(it->first);
      it = user_pools_.erase(it);
      continue;
    }
    const auto route = std::find_if(next.routes.begin(), next.routes.end(),
                                    [&](const auto& r) { return r.database == database; });
    const auto before_route = std::find_if(config_.routes.begin(), config_.routes.end(),
                                           [&](const auto& r) { return r.database == database; });
    if (before != nullptr && !database_changes(*before, *before_route, *after, *route).empty()) {
      // The users file is read at start only: the pool logs in as it did.
      const auto& login = user_logins_[it->first];
      auto update =
          it->second->update_config(user_pool_config(*after, user, login.password, login.proof));
      co_await std::move(update);
    }
    ++it;
  }
}

asio::awaitable<void> Application::retire_user_pool(std::shared_ptr<pool::Pool> pool,
                                                    std::string user) {
  auto retiring = pool->retire();
  co_await std::move(retiring);
  if (shutting_down_) co_return;
  std::erase(retiring_, pool);
  // The role may have logged in again meanwhile: its new pool has the same series then.
  if (!user_pools_.contains({pool->name(), user})) registry_.remove_user_pool(pool->name(), user);
  spdlog::info("pool {}: user {}'s pool removed, every server connection closed", pool->name(),
               user);
}

}  // namespace pgvigil::daemon
