#include "proxy/proxy_service.hpp"

#include <algorithm>

#include "pool/pool.hpp"

namespace pgvigil::proxy {

ProxyService::ProxyService(ProxySettings settings, std::vector<Route> routes,
                           std::shared_ptr<const auth::UsersFile> users,
                           metrics::StartupErrorMetrics& startup_errors)
    : settings_(std::move(settings)),
      users_(std::move(users)),
      startup_errors_(startup_errors),
      startup_gate_(std::make_shared<StartupGate>(settings_.max_startup_connections,
                                                  settings_.max_startup_per_address)) {
  for (auto& route : routes) routes_.push_back(std::make_shared<Route>(std::move(route)));
  tls_context_ = settings_.tls.context;
}

stream::ServerTlsContext ProxyService::tls_context() const {
  std::lock_guard lock(tls_mutex_);
  return tls_context_;
}

void ProxyService::replace_tls_context(stream::ServerTlsContext context) {
  std::lock_guard lock(tls_mutex_);
  tls_context_ = std::move(context);
}

ProxyService::~ProxyService() { blocking_.join(); }

Route* ProxyService::find_route(const std::string& database) {
  std::lock_guard lock(routes_mutex_);
  // A database split into shards (pool.shards) has one route per shard, in a row: clients are
  // dealt to them in turn.
  const auto first = std::find_if(routes_.begin(), routes_.end(), [&](const auto& route) {
    return route->settings.database == database;
  });
  if (first == routes_.end()) return nullptr;
  const auto end = std::find_if(first, routes_.end(), [&](const auto& route) {
    return route->settings.database != database;
  });
  const auto shards = static_cast<std::size_t>(end - first);
  if (shards == 1) return first->get();
  // The shard on the caller's own worker: the session stays on the thread that accepted it.
  for (auto shard = first; shard != end; ++shard) {
    if ((*shard)->pool && (*shard)->pool->executor().running_in_this_thread()) return shard->get();
  }
  return first[static_cast<std::ptrdiff_t>(next_shard_++ % shards)].get();
}

std::optional<std::size_t> ProxyService::this_worker() const {
  for (std::size_t index = 0; index < workers_.size(); ++index) {
    if (workers_[index].running_in_this_thread()) return index;
  }
  return std::nullopt;
}

Route* ProxyService::shard_route_on(const Route& route, std::size_t worker) {
  if (worker >= workers_.size()) return nullptr;
  std::lock_guard lock(routes_mutex_);
  const auto current = std::find_if(routes_.begin(), routes_.end(),
                                    [&](const auto& known) { return known.get() == &route; });
  if (current == routes_.end()) return nullptr;  // retired by a reload, or a per-user route
  for (const auto& shard : routes_) {
    if (shard.get() != &route && shard->settings.database == route.settings.database &&
        shard->pool && shard->pool->executor() == workers_[worker]) {
      return shard.get();
    }
  }
  return nullptr;
}

std::string ProxyService::route_names() const {
  std::lock_guard lock(routes_mutex_);
  std::string names;
  const std::string* previous = nullptr;
  for (const auto& route : routes_) {
    if (previous && *previous == route->settings.database) continue;  // another shard
    if (!names.empty()) names += ", ";
    names += route->settings.database;
    previous = &route->settings.database;
  }
  return names;
}

namespace {

bool same_route(const Route& a, const Route& b) {
  return a.settings == b.settings && a.pool == b.pool && a.metrics == b.metrics &&
         a.secret_lookup == b.secret_lookup && a.checkout_timeout == b.checkout_timeout;
}

}  // namespace

void ProxyService::replace_routes(std::vector<Route> routes) {
  std::lock_guard lock(routes_mutex_);
  std::vector<std::shared_ptr<Route>> next;
  for (auto& route : routes) {
    const auto kept = std::find_if(routes_.begin(), routes_.end(), [&](const auto& old) {
      return same_route(*old, route);
    });
    next.push_back(kept != routes_.end() ? *kept : std::make_shared<Route>(std::move(route)));
  }
  for (auto& old : routes_) {
    if (std::find(next.begin(), next.end(), old) == next.end()) {
      retired_routes_.push_back(std::move(old));
    }
  }
  routes_ = std::move(next);
  // Made again at the users' next logins, from the new configuration.
  for (auto& [key, made] : user_routes_) retired_routes_.push_back(std::move(made.route));
  user_routes_.clear();
}

std::variant<Route*, ClientError> ProxyService::user_route(const Route& database,
                                                           const std::string& user,
                                                           const auth::LoginProof& proof) {
  std::lock_guard lock(routes_mutex_);
  const std::pair key{database.settings.database, user};
  auto found = user_routes_.find(key);
  // A login that proved nothing (trust, cert, a plain password) takes a route made the same
  // way only: never one whose pool logs in with another client's proof.
  if (found != user_routes_.end() && proof == found->second.proof) {
    return found->second.route.get();
  }
  if (!make_user_route_) {
    return ClientError{sqlstate::kInternalError, "per-user pools are not set up", "", ""};
  }
  auto made = make_user_route_(database, user, proof);
  if (auto* refused = std::get_if<ClientError>(&made)) return std::move(*refused);
  auto& entry = user_routes_[key];
  // Sessions on the route it replaces keep it: it is retired, not freed.
  if (entry.route) retired_routes_.push_back(std::move(entry.route));
  entry.route = std::get<std::shared_ptr<Route>>(std::move(made));
  entry.proof = proof;
  return entry.route.get();
}

void ProxyService::publish_relayed() {
  std::lock_guard lock(routes_mutex_);
  for (const auto* routes : {&routes_, &retired_routes_}) {
    for (const auto& route : *routes) {
      if (route->metrics) route->metrics->relayed(route->relayed->take_new());
    }
  }
  for (const auto& [key, made] : user_routes_) {
    if (made.route->metrics) made.route->metrics->relayed(made.route->relayed->take_new());
  }
}

bool ProxyService::admit_client() {
  if (clients_.fetch_add(1, std::memory_order_relaxed) >= settings_.max_client_connections) {
    clients_.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  return true;
}

void ProxyService::begin_drain() {
  draining_ = true;
  cancels_.shut_down_all(false);
}

void ProxyService::force_close() {
  draining_ = true;
  cancels_.shut_down_all(true);
}

}  // namespace pgvigil::proxy
