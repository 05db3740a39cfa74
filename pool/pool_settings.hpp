#pragma once
// What one pool is told by the configuration: where its server is and how to keep it.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "probes/keepalive_settings.hpp"
#include "probes/ping_settings.hpp"

namespace pgvigil::pool {

using Milliseconds = std::chrono::milliseconds;

// One server a database may be reached at.
struct ServerHost {
  std::string host = "127.0.0.1";  // a name, an address, or a Unix socket directory ("/...")
  std::uint16_t port = 5432;

  bool is_unix_socket() const { return !host.empty() && host.front() == '/'; }
  // host:port, [v6]:port, or /dir/.s.PGSQL.port: the metrics' server label and the logs'.
  std::string describe() const;
  friend bool operator==(const ServerHost&, const ServerHost&) = default;
};

// Which servers of the list a pool may use, as libpq's target_session_attrs names them.
enum class TargetSessionAttrs {
  any,             // whichever answers first
  read_write,      // one that accepts writes: a primary whose default_transaction_read_only is off
  read_only,       // one that does not: a standby, or a primary made read-only
  primary,         // not in hot standby
  standby,         // in hot standby
  prefer_standby,  // a standby if one answers, else any
};

// libpq's spelling ("read-write", "prefer-standby", ...). Inline: the config loader, which
// does not link the pool, reads it.
inline std::string_view to_string(TargetSessionAttrs target) {
  switch (target) {
    case TargetSessionAttrs::any: return "any";
    case TargetSessionAttrs::read_write: return "read-write";
    case TargetSessionAttrs::read_only: return "read-only";
    case TargetSessionAttrs::primary: return "primary";
    case TargetSessionAttrs::standby: return "standby";
    case TargetSessionAttrs::prefer_standby: return "prefer-standby";
  }
  return "any";
}
// nullopt for anything but libpq's spelling.
inline std::optional<TargetSessionAttrs> parse_target_session_attrs(std::string_view text) {
  for (const auto target :
       {TargetSessionAttrs::any, TargetSessionAttrs::read_write, TargetSessionAttrs::read_only,
        TargetSessionAttrs::primary, TargetSessionAttrs::standby,
        TargetSessionAttrs::prefer_standby}) {
    if (text == to_string(target)) return target;
  }
  return std::nullopt;
}

class ServerLogin;  // server_link.hpp

// How a per-user pool's connections log in when libpq cannot. Not part of what decides the
// server and role a connection reaches: a new credential for the same role (its password
// changed) applies to connections opened from then on, while those already logged in stay. So
// it never makes two endpoints differ.
struct ServerCredential {
  std::shared_ptr<const ServerLogin> login;
  explicit operator bool() const { return login != nullptr; }
  friend bool operator==(const ServerCredential&, const ServerCredential&) { return true; }
};

struct ServerEndpoint {
  // Tried in order from the one that last matched target_session_attrs; never empty.
  std::vector<ServerHost> hosts{ServerHost{}};
  TargetSessionAttrs target_session_attrs = TargetSessionAttrs::any;
  std::string dbname;               // the database on the server
  std::string user;
  std::string password;             // secret: loaded from a file or the environment, never logged
  std::map<std::string, std::string> tls;  // libpq's sslmode, sslrootcert, sslcert, sslkey, sslcrl
  std::string application_name = "pgvigil";
  // Set when the connections log in without a password, with what a client's login proved (a
  // per-user pool); empty for libpq with `password`.
  ServerCredential login;

  // host:port/dbname as user (every host, comma-separated), for logs (no password).
  std::string describe() const;
  // Every field decides which server, as whom, a connection reaches: a reload that changes any
  // of them replaces the pool's connections.
  friend bool operator==(const ServerEndpoint&, const ServerEndpoint&) = default;
};

struct ReconnectSettings {
  Milliseconds initial_delay{250};  // first back-off after a failed connect
  Milliseconds max_delay{10000};    // cap while nobody waits for a connection
  Milliseconds max_delay_while_clients_wait{1000};  // cap while a checkout is waiting
  friend bool operator==(const ReconnectSettings&, const ReconnectSettings&) = default;
};

// pool.shards: 0, one shard per worker (at most max_size).
inline constexpr int kShardsPerWorker = 0;

struct PoolSettings {
  int min_idle = 2;                           // idle connections kept warm
  int max_size = 10;                          // all server connections of the pool
  // Pools the database is split into, each on its own worker with its share of min_idle and
  // max_size (1: one pool, one worker), lending each other capacity (Pool::set_siblings). Read
  // by the daemon, not by Pool. The config loader turns kShardsPerWorker into the worker count.
  int shards = 1;
  Milliseconds connect_timeout{5000};
  Milliseconds checkout_timeout{5000};
  Milliseconds max_lifetime{30 * 60 * 1000};  // 0: unlimited
  double lifetime_jitter = 0.2;               // each connection's lifetime is cut by up to this share
  Milliseconds idle_timeout{10 * 60 * 1000};  // closes idle connections above min_idle; 0: never
  Milliseconds validate_after_idle{1000};     // silent longer than this: pinged before lending
  ReconnectSettings reconnect;
  // Clients' named statements each connection keeps in transaction pooling. The relay keeps
  // them (proxy::RouteSettings gets a copy); it is configured with the pool because it is a
  // limit per server connection.
  int max_prepared_statements = 256;
  // A client that began a request (half a message, or extended-protocol messages without their
  // Sync) and sends nothing more for this long is closed, so that it cannot hold a server
  // connection; 0: never. Kept by the relay (proxy::RouteSettings gets a copy).
  Milliseconds client_request_timeout{5000};
  // Bounds the relay keeps as well (proxy::RouteSettings): a client idle inside a transaction,
  // or outside one; a request the server has not answered. 0: never.
  Milliseconds idle_transaction_timeout{0};
  Milliseconds client_idle_timeout{0};
  Milliseconds query_timeout{0};
  // While the server is found down (server_health.hpp), a checkout fails at once instead of
  // waiting up to checkout_timeout for the server to come back.
  bool fail_fast = false;
  // While the database is paused (Pool::pause), a checkout waits this long, not
  // checkout_timeout, before it fails.
  Milliseconds pause_timeout{30000};
  // A standby whose replay lags more than this (kReplicationLagQuery, at connect and at every
  // ping) gets no connection until it catches up; 0: not measured.
  Milliseconds max_replication_lag{0};
  friend bool operator==(const PoolSettings&, const PoolSettings&) = default;
};

struct PoolConfig {
  std::string name;  // the database name clients use, and the metrics' pool label
  // databases.<name>.user_pools: no pool of the entry's own, but one per client role, logging in
  // as that role (server.user and password are then the role's). Read by the daemon.
  bool user_pools = false;
  ServerEndpoint server;
  PoolSettings pool;
  probes::KeepaliveSettings keepalive;
  probes::PingSettings ping;
};

}  // namespace pgvigil::pool
