#pragma once
// Wiring: builds the worker loops, the metrics registry, the pools of each configured database
// (one per shard, pool.shards), the admin endpoint and the signal handling, runs them until a
// signal, then shuts down in order.
//
// Signals: SIGTERM or SIGINT starts a clean shutdown (exit code 0): listeners close, idle server
// connections close, connections leased to clients close as they come back (up to 10 s). A second SIGTERM or SIGINT
// during that shutdown exits at once: exit code 130 for SIGINT (as a shell reports Ctrl-C), 1 for
// SIGTERM. SIGHUP reloads the config file (see reload()); during shutdown it is ignored.
//
// Everything here runs on worker 0 (signals, reloads, systemd notifications, admin readiness),
// so Application's own state needs no lock; pools are reached through their thread-safe API.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <utility>
#include <variant>
#include <string>
#include <vector>

#include "daemon/config.hpp"
#include "daemon/service_notifier.hpp"
#include "daemon/worker_group.hpp"
#include "metrics/admin_server.hpp"
#include "metrics/registry.hpp"
#include "pool/pool.hpp"
#include "proxy/listener.hpp"
#include "proxy/login/proof_login.hpp"
#include "proxy/proxy_service.hpp"

namespace pgvigil::daemon {

class Application {
 public:
  explicit Application(Config config);
  ~Application();

  // Runs until SIGTERM or SIGINT and a clean shutdown. Returns the process exit code.
  int run();

 private:
  struct FileStamp {
    long long mtime_ns = 0;
    unsigned long long inode = 0;
    long long size = 0;
    friend bool operator==(const FileStamp&, const FileStamp&) = default;
  };

  boost::asio::awaitable<void> handle_signals();
  boost::asio::awaitable<void> handle_hangups();
  boost::asio::awaitable<void> shut_down();
  // Reloads the config file: invalid, or a restart-only key changed -> the old config stays and
  // the error is logged and counted; valid -> applied to pools, routes and log level.
  boost::asio::awaitable<void> reload(const char* trigger);
  boost::asio::awaitable<void> reload_once(const char* trigger);
  boost::asio::awaitable<void> retire_pool(std::shared_ptr<pool::Pool> pool);
  boost::asio::awaitable<void> watch_config_file();
  boost::asio::awaitable<void> report_status();
  boost::asio::awaitable<void> feed_watchdog();
  // One pool per shard of a database, on consecutive workers; all shards share the database's
  // metric series (their gauges add up).
  using Shards = std::vector<std::shared_ptr<pool::Pool>>;
  Shards make_pools(const pool::PoolConfig& database);
  std::vector<std::shared_ptr<pool::Pool>> all_pools() const;   // of the configured databases
  std::vector<std::shared_ptr<pool::Pool>> every_pool() const;  // and those still draining
  // Every pool with the name operators see: the database's, plus "(shard i/n)" when split, or
  // "(user NAME)" for a per-user pool. Per-user pools are shown on /readyz but do not make it
  // fail: one role's stale password must not take the whole sidecar out of service.
  struct NamedPool {
    std::string name;
    std::shared_ptr<pool::Pool> pool;
    bool gates_readiness = true;
    // The database (its index in pools_): it is ready when one of its shards is.
    std::size_t database = 0;
  };
  std::vector<NamedPool> named_pools() const;
  std::vector<proxy::Route> make_routes();
  // --- per-user pools (databases.<name>.user_pools; application_user_pools.cpp)
  // How a per-user pool logs in as its role: the users file's plain password, or else the
  // client's proof (pool::ServerLogin).
  struct UserLogin {
    std::string password;
    std::shared_ptr<const proxy::login::ProofLogin> proof;
  };
  // The route of `user` on a per-user database, with the pool that logs in as that user (made
  // at its first login); refused when neither a plain password nor the login's proof lets
  // pgvigil log in as the user.
  std::variant<std::shared_ptr<proxy::Route>, proxy::ClientError> make_user_route(
      const proxy::Route& database, const std::string& user,
      const proxy::auth::LoginProof& proof);
  std::shared_ptr<pool::Pool> make_user_pool(const pool::PoolConfig& database,
                                             const std::string& user, const UserLogin& login);
  // A reload: per-user pools of a database gone or no longer per-user drain; those of a changed
  // database take its new settings.
  boost::asio::awaitable<void> reload_user_pools(const Config& next);
  boost::asio::awaitable<void> retire_user_pool(std::shared_ptr<pool::Pool> pool, std::string user);
  // The per-user pools of one database.
  std::vector<std::shared_ptr<pool::Pool>> user_pools_of(const std::string& database) const;
  // auth.query's lookup for a database: the one it had, unless its server or auth.query
  // changed; null without auth.query.
  std::shared_ptr<proxy::auth::SecretLookup> secret_lookup(const pool::PoolConfig& database);
  std::string status_line() const;
  bool pools_healthy() const;
  std::optional<FileStamp> config_stamp() const;
  metrics::ReadyState readiness() const;
  // POST /pause or /resume of one database (application_control.cpp).
  metrics::ControlAnswer control(std::string_view action, std::string_view database);
  void build_proxy();

  Config config_;
  WorkerGroup workers_;
  metrics::Registry registry_;
  ServiceNotifier notifier_;
  std::vector<Shards> pools_;                          // same order as config_.databases
  std::vector<std::shared_ptr<pool::Pool>> retiring_;  // removed by a reload, still draining
  std::set<std::string> paused_databases_;             // by POST /pause, until /resume
  std::map<std::string, std::shared_ptr<proxy::auth::SecretLookup>> secret_lookups_;  // by database
  // Per-user pools by (database, user), made at the user's first login. Worker 0 only: sessions
  // hop there to find theirs (ProxyService::user_route_executor), and reloads run there.
  std::map<std::pair<std::string, std::string>, std::shared_ptr<pool::Pool>> user_pools_;
  std::map<std::pair<std::string, std::string>, UserLogin> user_logins_;  // how each logs in
  int next_worker_ = 0;
  std::unique_ptr<metrics::AdminServer> admin_;
  std::unique_ptr<proxy::ProxyService> proxy_;
  std::unique_ptr<proxy::Listener> listener_;
  bool drained_cleanly_ = true;  // every client finished before shutdown_timeout
  std::optional<boost::asio::signal_set> signals_;
  std::optional<boost::asio::signal_set> hangups_;
  bool shutting_down_ = false;
  bool ready_sent_ = false;
  bool reload_running_ = false;
  bool reload_again_ = false;
  std::optional<FileStamp> config_stamp_;  // as last read, for reload.watch_file
};

}  // namespace pgvigil::daemon
