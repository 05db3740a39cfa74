#pragma once
// What every client session shares: the routes (database -> pool), the users file, the cancel
// registry, the client limit and a small thread pool for the one blocking call (a cancel request).

#include <atomic>
#include <boost/asio/thread_pool.hpp>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "metrics/proxy_metrics.hpp"
#include "proxy/auth/login_proof.hpp"
#include "proxy/auth/users_file.hpp"
#include "proxy/cancel_registry.hpp"
#include "proxy/client_error.hpp"
#include "proxy/proxy_settings.hpp"
#include "proxy/route.hpp"
#include "proxy/startup_gate.hpp"
#include "proxy/worker_placement.hpp"

namespace pgvigil::proxy {

class ProxyService {
 public:
  // startup_errors counts what clients are told before they reach a route; it must outlive the
  // service.
  ProxyService(ProxySettings settings, std::vector<Route> routes,
               std::shared_ptr<const auth::UsersFile> users,
               metrics::StartupErrorMetrics& startup_errors);
  ~ProxyService();

  const ProxySettings& settings() const { return settings_; }
  // The workers' event loops, and where new clients go (the listener's placement, which
  // outlives the sessions): lets a session move to another worker's shard of its database. Set
  // once, before clients come; without it sessions never move.
  void set_workers(std::vector<stream::Executor> workers, WorkerPlacement* placement) {
    // A session keeps its worker's index in 7 bits of a byte, the eighth saying it is on its
    // way there: past 128 workers, none moves.
    if (workers.size() > kMostWorkersToMoveAmong) return;
    workers_ = std::move(workers);
    placement_ = placement;
  }
  static constexpr std::size_t kMostWorkersToMoveAmong = 128;
  const std::vector<stream::Executor>& workers() const { return workers_; }
  WorkerPlacement* placement() const { return placement_; }
  // The calling thread's worker, by index; nullopt off the workers (or none set).
  std::optional<std::size_t> this_worker() const;
  // The route of `route`'s database on worker `worker`'s shard; null unless `route` is a current
  // route of a database split into shards with one on that worker. Thread-safe.
  Route* shard_route_on(const Route& route, std::size_t worker);
  // Thread-safe. The Route stays valid for the service's lifetime, even after a reload
  // replaced or removed it, so a session may keep using the one it found. Of a database split
  // into shards, the shard on the caller's worker; else the next in turn.
  Route* find_route(const std::string& database);
  std::string route_names() const;  // "app, reports" for hints
  // A reload: the routes clients can find from now on. A route whose database, settings,
  // pool and checkout timeout are unchanged keeps its Route object (and what it learned of its
  // server); the others are replaced, and removed databases are no longer found. Thread-safe.
  void replace_routes(std::vector<Route> routes);
  // Per-user databases (RouteSettings::user_pools): the route of `user`, made by the maker at
  // the user's first login and kept until a reload (which retires it: the next login makes it
  // again, on the same pool unless the database changed). A login that proved something else
  // than the route was made with (the role's password changed) makes it again, so the pool
  // logs in with the new proof. An error when the maker refuses (no way to log in as the
  // user). Thread-safe.
  using UserRouteMaker = std::function<std::variant<std::shared_ptr<Route>, ClientError>(
      const Route& database, const std::string& user, const auth::LoginProof& proof)>;
  // The maker runs on `executor` (where the daemon keeps its per-user pools): sessions hop there.
  void set_user_route_maker(UserRouteMaker maker, stream::Executor executor) {
    make_user_route_ = std::move(maker);
    user_route_executor_.emplace(executor);
  }
  // Where user_route() must be called. Only when a maker is set.
  stream::Executor user_route_executor() const { return *user_route_executor_; }
  std::variant<Route*, ClientError> user_route(const Route& database, const std::string& user,
                                               const auth::LoginProof& proof);
  // Adds what every route (retired ones too) relayed since the last call to its database's
  // counters. Runs when metrics are read (metrics::Registry::on_scrape).
  void publish_relayed();
  const auth::UsersFile* users() const { return users_.get(); }
  // null: no auth.hba_file, each database's auth_method applies to every client.
  const auth::AccessRules* access_rules() const { return settings_.access_rules.get(); }
  // The TLS context offered to clients that ask (null: answered 'N'). A reload replaces it;
  // sessions keep the one they were accepted with. Thread-safe.
  stream::ServerTlsContext tls_context() const;
  void replace_tls_context(stream::ServerTlsContext context);
  CancelRegistry& cancels() { return cancels_; }
  boost::asio::thread_pool& blocking() { return blocking_; }

  // Counts an authenticated client in; false when max_client_connections are already connected.
  bool admit_client();
  // A new connection is worth starting: fewer than max_client_connections are authenticated.
  bool room_for_client() const {
    return clients_.load(std::memory_order_relaxed) < settings_.max_client_connections;
  }
  // The connections still in startup (listen.max_startup_connections and _per_address).
  StartupGate& startup_gate() { return *startup_gate_; }
  // An error sent to a client that has no route yet (its database is unknown or not yet named).
  void count_startup_error(std::string_view sqlstate) { startup_errors_.startup_error(sqlstate); }

  // Graceful shutdown: sessions end at the end of their current transaction (begin_drain), or
  // at once (force_close); both answer the client 57P01. Thread-safe.
  void begin_drain();
  void force_close();
  bool draining() const { return draining_.load(std::memory_order_relaxed); }
  void client_left() { clients_.fetch_sub(1, std::memory_order_relaxed); }
  int clients() const { return clients_.load(std::memory_order_relaxed); }

 private:
  ProxySettings settings_;
  std::vector<stream::Executor> workers_;
  WorkerPlacement* placement_ = nullptr;
  mutable std::mutex routes_mutex_;
  std::vector<std::shared_ptr<Route>> routes_;
  std::size_t next_shard_ = 0;  // turns among a sharded database's routes; under routes_mutex_
  // Replaced and removed routes: sessions may still point at them.
  std::vector<std::shared_ptr<Route>> retired_routes_;
  // Per-user databases' routes by (database, user); under routes_mutex_.
  struct UserRoute {
    std::shared_ptr<Route> route;
    auth::LoginProof proof;  // what the login that made it proved
  };
  std::map<std::pair<std::string, std::string>, UserRoute> user_routes_;
  UserRouteMaker make_user_route_;
  std::optional<stream::Executor> user_route_executor_;
  std::shared_ptr<const auth::UsersFile> users_;
  mutable std::mutex tls_mutex_;
  stream::ServerTlsContext tls_context_;  // under tls_mutex_
  metrics::StartupErrorMetrics& startup_errors_;
  CancelRegistry cancels_;
  std::atomic<int> clients_{0};  // authenticated
  std::shared_ptr<StartupGate> startup_gate_;
  std::atomic<bool> draining_{false};
  boost::asio::thread_pool blocking_{1};
};

}  // namespace pgvigil::proxy
