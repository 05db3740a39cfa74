#include "daemon/config_keys.hpp"

#include <algorithm>

namespace pgvigil::daemon {
namespace {

constexpr bool kReloads = true;
constexpr bool kNeedsRestart = false;

// Defaults here must match the structs' member initialisers; config_test parses this column and
// compares, so a change to one without the other fails the build's tests.
std::vector<ConfigKey> make_keys() {
  using enum KeyType;
  return {
      {"workers", integer, "0", kNeedsRestart,
       "Event-loop threads; 0 starts one per core the process may use: its CPU affinity, capped by "
       "its cgroup CPU quota (a Kubernetes limits.cpu) rounded up."},
      {"shutdown_timeout", duration, "30s", kReloads,
       "On SIGTERM, clients may finish the transaction they are in for this long; then 57P01."},
      {"log.level",
       enumeration,
       "info",
       kReloads,
       "Least severe message written.",
       {"trace", "debug", "info", "warn", "error"}},
      {"log.format",
       enumeration,
       "text",
       kNeedsRestart,
       "text suits journald and terminals; json writes one object per line.",
       {"text", "json"}},
      {"admin.listen", listen, "127.0.0.1:9930", kNeedsRestart,
       "Address of the HTTP endpoint for /metrics, /healthz, /readyz and the control requests "
       "POST /pause and /resume; [::1]:9930 for IPv6."},
      {"admin.token_file", string, "\"\"", kNeedsRestart,
       "File holding a bearer token (16 characters or more) that control requests (POST /pause, "
       "/resume) must then bring, as Authorization: Bearer ...; \"\": they are taken on a "
       "loopback admin.listen only. Relative to the config file's directory."},
      {"admin.tls.cert_file", string, "\"\"", kReloads,
       "PEM certificate chain: the endpoint then speaks HTTPS only (TLS 1.2 or later; scrapers "
       "need scheme: https), and `pgvigil pause/resume` trusts exactly this certificate. Read "
       "again at every reload. \"\": plain HTTP. Relative to the config file's directory."},
      {"admin.tls.key_file", string, "\"\"", kReloads, "Its private key (PEM)."},
      {"systemd.ready_when",
       enumeration,
       "listening",
       kNeedsRestart,
       "When a Type=notify service reports READY=1: once the listeners are open, or once every "
       "pool has its first healthy server connection.",
       {"listening", "pools_healthy"}},
      {"reload.watch_file", boolean, "false", kReloads,
       "Reload when the config file changes (checked every second), as on SIGHUP."},

      {"listen.address", listen, "127.0.0.1:6432", kNeedsRestart,
       "Where PostgreSQL clients connect over TCP; [::1]:6432 for IPv6; \"\" disables TCP. The "
       "port also names the Unix socket."},
      {"listen.unix_socket_dir", string, "\"\"", kNeedsRestart,
       "Directory for the Unix socket `.s.PGSQL.<port>`; \"\" disables it. At least one of "
       "address and unix_socket_dir must be set."},
      {"listen.max_client_connections", integer, "1000", kNeedsRestart,
       "Most authenticated client connections at once; further clients are refused (53300); at "
       "least 1."},
      {"listen.max_startup_connections", integer, "100", kNeedsRestart,
       "Most connections still in start-up (TLS, StartupMessage, authentication) at once, apart "
       "from max_client_connections, so silent sockets cannot keep real clients out: a new "
       "connection beyond it pushes out the one that has waited longest (53300); 0: no bound."},
      {"listen.max_startup_per_address", integer, "50", kNeedsRestart,
       "The same, for the connections from one source address (the Unix socket counts as one); "
       "0: no bound."},
      {"listen.startup_timeout", duration, "10s", kNeedsRestart,
       "A client that has not finished start-up and authentication by then is dropped; above 0."},
      {"listen.defer_accept", whole_seconds, "10s", kNeedsRestart,
       "A TCP client is accepted once its first bytes arrive (TCP_DEFER_ACCEPT, as PgBouncer "
       "does): a PostgreSQL client always speaks first, and its connection and first message "
       "then cost one wake-up, not two. One that connects and sends nothing stays with the "
       "kernel, outside max_startup_connections, until the kernel's first SYN-ACK "
       "retransmission after this long (1, 3, 7, 15, 31 s...: 10s is about 15 s), is accepted "
       "then and has startup_timeout; 0: accepted at once; at most 1h."},
      {"listen.pack_until_busy", number, "0.7", kNeedsRestart,
       "New clients go to the first worker until its event loop is busy for this share of a "
       "core, then to the next: on cores shared with the server and the application, fewer "
       "busier workers spend less CPU per transaction than many half-idle ones. A worker over "
       "it moves an active session between two transactions to a worker well below it (one per "
       "0.2 s). From 0 to 1; 0: spread clients over every worker as they come, move none."},
      {"listen.max_message_bytes", integer, "268435456", kNeedsRestart,
       "Largest protocol message accepted from a client, in bytes; at least 1024."},
      {"listen.tls.cert_file", string, "\"\"", kReloads,
       "PEM certificate chain shown to clients that ask for TLS (SSLRequest); \"\": TLS is not "
       "offered and such clients go on in the clear. Read again at every reload (SIGHUP), so a "
       "renewed certificate reaches new clients without dropping any session. Relative to the "
       "config file's directory."},
      {"listen.tls.key_file", string, "\"\"", kReloads,
       "The certificate's private key (PEM, unencrypted); required with cert_file."},
      {"listen.tls.ca_file", string, "\"\"", kReloads,
       "PEM CA certificates that sign client certificates; clients are asked for one when set. "
       "Required by verify-ca and verify-full."},
      {"listen.tls.mode",
       enumeration,
       "allow",
       kReloads,
       "What every database that does not override it asks of a TCP client's link: allow (TLS "
       "when the client asks), require (refused in the clear with 28000), verify-ca (and a client "
       "certificate signed by ca_file), verify-full (whose common name is the user name); "
       "disable: TLS is never offered. Unix-socket clients are local and exempt.",
       {"disable", "allow", "require", "verify-ca", "verify-full"}},
      {"listen.tls.min_protocol",
       enumeration,
       "TLSv1.2",
       kReloads,
       "Oldest TLS version accepted from clients.",
       {"TLSv1.2", "TLSv1.3"}},
      {"auth.method",
       enumeration,
       "trust",
       kReloads,
       "How clients authenticate to pgvigil, for every database that does not override it.",
       {"trust", "md5", "scram-sha-256"}},
      {"auth.hba_file", string, "\"\"", kNeedsRestart,
       "Access rules in pg_hba.conf's form, first match wins: TYPE (local, host, hostssl, "
       "hostnossl) DATABASE USER [ADDRESS] METHOD (trust, md5, scram-sha-256, cert, reject); a "
       "client no rule matches is refused (28000). When set, the rules decide every client's "
       "method and the databases' auth_method is not used. \"\": auth_method for everyone. "
       "Relative to the config file's directory."},
      {"auth.users_file", string, "\"\"", kNeedsRestart,
       "File of \"user\" \"secret\" lines; relative to the config file's directory; md5 and "
       "scram-sha-256 need it or auth.query. Its users come first; auth.query is asked for the "
       "others."},
      {"auth.query.user", string, "\"\"", kReloads,
       "Role that looks up, on each database's own servers, the secret of a client the users "
       "file does not list (PgBouncer's auth_user), so no login has to be copied into a file. "
       "It must be able to run auth.query.sql: a superuser for pg_shadow, or any role given "
       "EXECUTE on a SECURITY DEFINER function. \"\": no lookups."},
      {"auth.query.password_file", string, "\"\"", kReloads,
       "File holding that role's password (trailing newline removed); relative to the config "
       "file's directory."},
      {"auth.query.password_env", string, "\"\"", kReloads,
       "Or: environment variable holding it; not both."},
      {"auth.query.sql", string, "SELECT usename, passwd FROM pg_shadow WHERE usename = $1",
       kReloads,
       "Query for a client's secret: $1 is the user name, bound as a parameter; the first row's "
       "second column (or only column) is the secret, md5... or SCRAM-SHA-256$... as PostgreSQL "
       "stores it. No row, or NULL: no such user (refused like a wrong password)."},
      {"auth.query.cache_time", duration, "60s", kReloads,
       "An answer, found or not, is used this long before the server is asked again: a changed "
       "password or a dropped role takes effect within it. 0: asked at every login."},

      {"keepalive.idle", whole_seconds, "5s", kReloads,
       "TCP_KEEPIDLE: quiet time before the first keep-alive probe; at least 1s."},
      {"keepalive.interval", whole_seconds, "2s", kReloads,
       "TCP_KEEPINTVL: time between unanswered probes; at least 1s."},
      {"keepalive.count", integer, "3", kReloads,
       "TCP_KEEPCNT: unanswered probes before the kernel drops the connection; at least 1."},
      {"keepalive.user_timeout", duration, "11s", kReloads,
       "TCP_USER_TIMEOUT: longest time sent data may stay unacknowledged; 0 keeps the kernel's "
       "default. Advice: idle + interval * count."},

      {"ping.interval", duration, "5s", kReloads,
       "An idle connection silent this long is pinged; above 0."},
      {"ping.timeout", duration, "1s", kReloads,
       "A ping unanswered this long evicts the connection; above 0 and below ping.interval."},
      {"ping.jitter", number, "0.1", kReloads,
       "Pings come early by a random share of ping.interval up to this, never late, so pings of "
       "many connections spread out and the detection bound holds; from 0 to 0.5."},
      {"ping.query", string, "\"\"", kReloads,
       "SQL sent as the ping; empty sends the empty query, the cheapest round trip."},

      {"pool.min_idle", integer, "2", kReloads,
       "Idle connections kept open and warm; at most pool.max_size; none in a user_pools role's."},
      {"pool.max_size", integer, "10", kReloads,
       "Most server connections of one pool, idle and checked out; at least 1."},
      {"pool.shards", integer, "0", kReloads,
       "Splits the pool into this many pools, one per worker, each starting with its share of "
       "pool.min_idle and pool.max_size, so one database's relay uses that many cores. A client "
       "runs on the worker that accepted it, with that worker's shard. A shard with a waiting "
       "client and no room takes an idle connection (or unused room) from another shard, so the "
       "database's pool.max_size is shared, not cut. 0: one per worker (at most pool.max_size); "
       "otherwise from 1 to pool.max_size; more than workers gains nothing."},
      {"pool.connect_timeout", duration, "5s", kReloads,
       "Longest time for one connection attempt, TLS and authentication included; above 0."},
      {"pool.checkout_timeout", duration, "5s", kReloads,
       "Longest time a client waits for a server connection; above 0."},
      {"pool.max_lifetime", duration, "30m", kReloads,
       "A connection older than this is closed when next idle; 0: no limit."},
      {"pool.lifetime_jitter", number, "0.2", kReloads,
       "Shortens each connection's lifetime by a random share up to this, so they do not all "
       "expire together; from 0 up to (not including) 1."},
      {"pool.idle_timeout", duration, "10m", kReloads,
       "Idle connections above pool.min_idle are closed after this; 0: never."},
      {"pool.validate_after_idle", duration, "1s", kReloads,
       "A connection silent longer than this is pinged before a client gets it."},
      {"pool.max_prepared_statements", integer, "256", kReloads,
       "Clients' named prepared statements each server connection keeps in transaction pooling "
       "(shared by clients that prepare the same SQL); the least recently used is closed "
       "beyond it. 256 is pgjdbc's statement cache. Costs the server a cached plan per "
       "statement and pgvigil about 100 bytes plus the text. 0: named statements pass untouched "
       "and pin their client to its server connection for the rest of its session."},
      {"pool.client_request_timeout", duration, "5s", kReloads,
       "A client that began a request (part of a message, or extended-protocol messages without "
       "their Sync, everything sent before answered) and sends nothing more for this long gets "
       "FATAL 08P01 and is closed, and the server connection it held is evicted, so a stalled or "
       "malicious client cannot hold a pool slot. Transaction pooling only (in session pooling the "
       "connection is the client's anyway); 0: never."},
      {"pool.idle_transaction_timeout", duration, "0", kReloads,
       "A client that holds a server connection idle inside a transaction for this long gets "
       "FATAL 25P03 and is closed, and the connection is evicted (its transaction with it), so "
       "a forgotten BEGIN cannot hold a pool slot; 0: never."},
      {"pool.client_idle_timeout", duration, "0", kReloads,
       "A client idle outside a transaction for this long gets FATAL 57P05 and is closed "
       "(timed every 100 ms while it is parked); in session pooling its server connection "
       "is evicted; 0: never."},
      {"pool.query_timeout", duration, "0", kReloads,
       "A request the server has not answered for this long (from the request to its "
       "ReadyForQuery) is cancelled on the server: the client gets the server's 57014 and keeps "
       "its session. If the server does not answer the cancel within ping.timeout either, the "
       "client gets 08006 and the connection is evicted (query_timeout); 0: never."},
      {"pool.fail_fast", boolean, "false", kReloads,
       "While the server is found down (no path to it answered within ping.timeout, see "
       "pgvigil_server_health), a client asking for a connection gets 08006 at once; false: it "
       "waits up to pool.checkout_timeout for the server to come back."},
      {"pool.max_replication_lag", duration, "0", kReloads,
       "A standby whose replay lags more than this is given no connection, and its connections "
       "are closed at their next ping (replication_lag), until it catches up. Measured at connect "
       "and in every ping of a standby's connection: the age of the last replayed transaction "
       "while WAL received is waiting to be replayed. 0: not measured."},
      {"pool.pause_timeout", duration, "30s", kReloads,
       "While the database is paused (POST /pause, `pgvigil pause`), a client's next "
       "transaction waits this long for the resume (from the pause, for one already waiting), "
       "then gets 53300; above 0."},
      {"pool.reconnect.initial_delay", duration, "250ms", kReloads,
       "First wait after a failed connect; doubles on each further failure; above 0."},
      {"pool.reconnect.max_delay", duration, "10s", kReloads,
       "Cap of the wait between connects while no client waits; at least initial_delay."},
      {"pool.reconnect.max_delay_while_clients_wait", duration, "1s", kReloads,
       "Cap of the wait between connects while a client waits; from initial_delay to max_delay."},

      {"databases", map, "(required)", kReloads,
       "One entry per database; the entry's name is the database name clients ask for and the "
       "pool label in metrics."},
      {"databases.<name>.host", string, "127.0.0.1", kReloads,
       "Server host name, address, or Unix socket directory (starting with /)."},
      {"databases.<name>.port", port, "5432", kReloads,
       "Server port; also the port of a hosts entry that names none."},
      {"databases.<name>.hosts", host_list, "[]", kReloads,
       "Several servers of one database, e.g. [\"db1:5432\", \"db2:5432\"], tried in order "
       "from the one that last matched target_session_attrs; [] uses host and port. Not together "
       "with host."},
      {"databases.<name>.target_session_attrs",
       enumeration,
       "\"\"",
       kReloads,
       "Which servers the pool uses, as libpq names it; \"\": read-write when hosts lists "
       "several, else any. A server whose role stops matching (a promotion) loses its "
       "connections as their clients finish (role_changed).",
       {"", "any", "read-write", "read-only", "primary", "standby", "prefer-standby"}},
      {"databases.<name>.dbname", string, "(the entry's name)", kReloads,
       "Database on the server."},
      {"databases.<name>.user", string, "(required)", kReloads,
       "Role the pool logs in as; leave it out with user_pools."},
      {"databases.<name>.user_pools", boolean, "false", kReloads,
       "Queries run as each client's own role: one pool per (database, user), each with the "
       "pool section's limits but no min_idle, logging in to the server as that user with its "
       "plain password "
       "from auth.users_file, or else with what the client's SCRAM or md5 login proved against "
       "the server's own verifier (auth.query, or a verifier in the users file). Metrics carry "
       "a user label, /readyz a line per user."},
      {"databases.<name>.password_file", string, "\"\"", kReloads,
       "File holding the password, trailing newline removed; relative to the config file's "
       "directory; empty: none."},
      {"databases.<name>.password_env", string, "\"\"", kReloads,
       "Environment variable holding the password; empty: none; not together with "
       "password_file."},
      {"databases.<name>.application_name", string, "pgvigil", kReloads,
       "application_name the server shows in pg_stat_activity."},
      {"databases.<name>.sslmode",
       enumeration,
       "prefer",
       kReloads,
       "libpq sslmode of the server link.",
       {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}},
      {"databases.<name>.sslrootcert", string, "\"\"", kReloads,
       "libpq sslrootcert: CA certificates to verify the server; empty: libpq's default."},
      {"databases.<name>.sslcert", string, "\"\"", kReloads,
       "libpq sslcert: client certificate; empty: libpq's default."},
      {"databases.<name>.sslkey", string, "\"\"", kReloads,
       "libpq sslkey: client certificate's key; empty: libpq's default."},
      {"databases.<name>.sslcrl", string, "\"\"", kReloads,
       "libpq sslcrl: certificate revocation list; empty: none."},
      {"databases.<name>.pool_mode",
       enumeration,
       "transaction",
       kReloads,
       "transaction: the server connection returns to the pool after each transaction; session: "
       "it stays with the client until the client leaves.",
       {"session", "transaction"}},
      {"databases.<name>.reset_query", string, "DISCARD ALL", kReloads,
       "Run before a session-mode server connection is given to the next client; \"\": none."},
      {"databases.<name>.auth_method",
       enumeration,
       "\"\"",
       kReloads,
       "Overrides auth.method for this database; \"\" inherits it.",
       {"", "trust", "md5", "scram-sha-256"}},
      {"databases.<name>.tls_mode",
       enumeration,
       "\"\"",
       kReloads,
       "Overrides listen.tls.mode for this database's TCP clients; \"\" inherits it.",
       {"", "allow", "require", "verify-ca", "verify-full"}},
      {"databases.<name>.pool", map, "{}", kReloads, "Overrides any pool.* key for this database."},
      {"databases.<name>.keepalive", map, "{}", kReloads,
       "Overrides any keepalive.* key for this database."},
      {"databases.<name>.ping", map, "{}", kReloads, "Overrides any ping.* key for this database."},
  };
}

}  // namespace

const std::vector<ConfigKey>& config_keys() {
  static const std::vector<ConfigKey> keys = make_keys();
  return keys;
}

const ConfigKey* find_config_key(std::string_view path) {
  const auto& keys = config_keys();
  const auto it =
      std::find_if(keys.begin(), keys.end(), [&](const ConfigKey& k) { return k.path == path; });
  return it == keys.end() ? nullptr : &*it;
}

}  // namespace pgvigil::daemon
