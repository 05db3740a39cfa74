#pragma once
// What the client-facing proxy is told by the configuration.

#include <chrono>
#include <cstdint>
#include <string>

#include "proxy/auth/access_rules.hpp"
#include "stream/server_tls.hpp"

namespace pgvigil::proxy {

enum class PoolMode {
  session,      // the server connection belongs to the client until it leaves, then is reset
  transaction,  // the server connection goes back to the pool at ReadyForQuery idle
};

enum class AuthMethod { trust, md5, scram_sha_256 };

// What a database asks of a client's link (listen.tls.mode, databases.<name>.tls_mode). Clients on
// the Unix socket are local and never use TLS (libpq does not offer it there): only TCP clients
// are held to require and above.
enum class ClientTlsMode : std::uint8_t {
  disable,      // TLS is not offered (only as listen.tls.mode)
  allow,        // offered; a client may stay in the clear
  require,      // TCP clients must use TLS
  verify_ca,    // ... and present a certificate signed by listen.tls.ca_file
  verify_full,  // ... whose common name is the user name the client logs in with
};

// listen.tls.*: the certificate pgvigil shows clients.
struct ClientTlsSettings {
  ClientTlsMode mode = ClientTlsMode::allow;
  stream::ServerTlsFiles files;  // cert_file "" offers no TLS
  // Made from the files when the configuration is read (and again at every reload, so a renewed
  // certificate is picked up); null when TLS is not offered.
  stream::ServerTlsContext context;
};

struct ListenSettings {
  std::string host = "127.0.0.1";  // empty: no TCP listener
  std::uint16_t port = 6432;       // also names the Unix socket: .s.PGSQL.<port>
  std::string unix_socket_dir;     // empty: no Unix socket
};

// auth.query: the secrets of clients missing from the users file are looked up on the
// database's server by a dedicated role (proxy/auth/secret_lookup.hpp).
struct AuthQuerySettings {
  std::string user;      // the role that runs the query; "": no lookups
  std::string password;  // its password (auth.query.password_file or _env); secret, never logged
  // $1 is the client's user name; the first row's second column is its secret (md5..., or
  // SCRAM-SHA-256$...); no row or NULL: no such user, or no password.
  std::string sql = "SELECT usename, passwd FROM pg_shadow WHERE usename = $1";
  std::chrono::milliseconds cache_time{60000};  // an answer, found or not, is kept this long
  bool enabled() const { return !user.empty(); }
  friend bool operator==(const AuthQuerySettings&, const AuthQuerySettings&) = default;
};

struct ProxySettings {
  ListenSettings listen;
  int max_client_connections = 1000;  // authenticated clients
  // Connections not yet authenticated, apart (proxy/startup_gate.hpp); 0: no bound.
  int max_startup_connections = 100;
  int max_startup_per_address = 50;
  // An accepted client that has not logged in by then is dropped.
  std::chrono::milliseconds startup_timeout{10000};
  // TCP_DEFER_ACCEPT: a TCP client is accepted once its first bytes arrive (a PostgreSQL client
  // always speaks first), so accepting and reading its first message take one wake-up, not two.
  // One that sends nothing stays with the kernel until its first SYN-ACK retransmission after
  // this long (10 s: about 15 s), is accepted then, and startup_timeout applies. 0: at once.
  std::chrono::seconds defer_accept{10};
  // New clients fill the first worker until its event loop is busy for this share of a core,
  // then the next (worker_placement.hpp); 0: spread over every worker by the kernel's hash.
  double pack_until_busy = 0.7;
  std::uint32_t max_message_bytes = 256u * 1024 * 1024;
  AuthMethod auth_method = AuthMethod::trust;  // default for every database
  std::string users_file;  // "user" "secret" lines: plain, md5..., or SCRAM-SHA-256$...
  // Access rules in pg_hba.conf's form (proxy/auth/access_rules.hpp); "": the databases'
  // auth_method for every client. The rules are read once, with the configuration.
  std::string hba_file;
  std::shared_ptr<const auth::AccessRules> access_rules;  // null without hba_file
  AuthQuerySettings auth_query;
  ClientTlsSettings tls;
};

// Per database (the client-facing name); same order as Config::databases.
struct RouteSettings {
  std::string database;
  // Queries run as each client's role: the route is a template, each user gets a route of its
  // own with a pool that logs in as it (ProxyService::user_route).
  bool user_pools = false;
  PoolMode pool_mode = PoolMode::transaction;
  std::string reset_query = "DISCARD ALL";  // run before a session-mode connection is reused
  AuthMethod auth_method = AuthMethod::trust;  // the global auth.method unless overridden
  // What the client's link must be (databases.<name>.tls_mode, else listen.tls.mode).
  ClientTlsMode tls_mode = ClientTlsMode::allow;
  // Named statements kept per server connection in transaction pooling; 0 passes them through
  // and pins their client (pool.max_prepared_statements, read with the pool's keys).
  int max_prepared_statements = 256;
  // A client silent this long in the middle of a request is closed (pool.client_request_timeout,
  // read with the pool's keys); 0: never.
  std::chrono::milliseconds client_request_timeout{5000};
  // A client idle inside a transaction this long is closed (25P03) and its server connection
  // evicted (pool.idle_transaction_timeout); 0: never.
  std::chrono::milliseconds idle_transaction_timeout{0};
  // A client idle outside a transaction this long is closed (57P05) (pool.client_idle_timeout);
  // 0: never.
  std::chrono::milliseconds client_idle_timeout{0};
  // A request the server has not answered this long is cancelled on the server
  // (pool.query_timeout); if the cancel is not answered within query_cancel_grace (the pool's
  // ping.timeout) either, the connection is evicted. 0: never.
  std::chrono::milliseconds query_timeout{0};
  std::chrono::milliseconds query_cancel_grace{1000};
  // A request the server has not answered, with nothing heard from it, for this long (the
  // pool's ping.interval) makes the server suspect: it is asked on other paths
  // (pool/server_health.hpp).
  std::chrono::milliseconds server_silence_suspect{5000};
  friend bool operator==(const RouteSettings&, const RouteSettings&) = default;
};

}  // namespace pgvigil::proxy
