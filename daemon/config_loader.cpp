#include "daemon/config_loader.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "daemon/duration.hpp"
#include "daemon/section_reader.hpp"

namespace pgvigil::daemon {
namespace {

using detail::SectionReader;
using std::chrono::milliseconds;

// Reads a whole file, or returns errno. POSIX calls rather than iostreams so the error is exact
// (EISDIR, EACCES) instead of a bare failbit.
std::optional<std::string> read_file(const std::string& path, int& error) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    error = errno;
    return std::nullopt;
  }
  std::string text;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      error = errno;
      ::close(fd);
      return std::nullopt;
    }
    text.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return text;
}

LogSettings parse_log(SectionReader& r) {
  LogSettings log;
  r.read("level", log.level);
  r.read("format", log.format);
  return log;
}

AdminSettings parse_admin(SectionReader& r) {
  AdminSettings admin;
  r.read_listen("listen", admin.host, admin.port);
  return admin;
}

// listen.*: where and how many clients the proxy accepts.
void parse_listen(SectionReader& r, proxy::ProxySettings& settings) {
  r.read_listen("address", settings.listen.host, settings.listen.port, /*allow_empty=*/true);
  r.read("unix_socket_dir", settings.listen.unix_socket_dir);
  if (r.read("max_client_connections", settings.max_client_connections) &&
      settings.max_client_connections < 1) {
    r.fail("max_client_connections", "must be at least 1");
  }
  if (r.read("startup_timeout", settings.startup_timeout) &&
      settings.startup_timeout <= milliseconds{0}) {
    r.fail("startup_timeout", "must be above 0");  // 0 would drop every client at once
  }
  // Read as int: the table's integer type is int, and every sane limit fits.
  int max_message_bytes = static_cast<int>(settings.max_message_bytes);
  if (r.read("max_message_bytes", max_message_bytes) && max_message_bytes < 1024) {
    r.fail("max_message_bytes", "must be at least 1024");  // a start-up packet alone can be ~1k
  }
  settings.max_message_bytes = static_cast<std::uint32_t>(max_message_bytes);
}

proxy::AuthMethod auth_method_from(std::string_view text) {
  if (text == "md5") return proxy::AuthMethod::md5;
  if (text == "scram-sha-256") return proxy::AuthMethod::scram_sha_256;
  return proxy::AuthMethod::trust;  // the table allows nothing else
}

bool needs_users_file(proxy::AuthMethod method) { return method != proxy::AuthMethod::trust; }

// auth.*: the users file is only resolved here; whether it is required is decided once the
// databases (which may override the method) are known.
void parse_auth(SectionReader& r, proxy::ProxySettings& settings) {
  std::string method = "trust";
  r.read("method", method);
  settings.auth_method = auth_method_from(method);
  if (r.read("users_file", settings.users_file) && !settings.users_file.empty()) {
    std::filesystem::path path(settings.users_file);
    if (path.is_relative()) path = std::filesystem::path(r.source()).parent_path() / path;
    settings.users_file = path.string();
  }
}

// Read now rather than when the proxy starts, so a typo is a config error with a position.
void check_users_file(SectionReader& r, const std::string& path) {
  int error = 0;
  if (!read_file(path, error)) {
    r.fail("users_file", "cannot read " + path + ": " + std::strerror(error));
  }
}

proxy::RouteSettings parse_route(SectionReader& r, const std::string& name,
                                 proxy::AuthMethod default_method) {
  proxy::RouteSettings route;
  route.database = name;
  std::string pool_mode = "transaction";
  r.read("pool_mode", pool_mode);
  route.pool_mode =
      pool_mode == "session" ? proxy::PoolMode::session : proxy::PoolMode::transaction;
  r.read("reset_query", route.reset_query);
  std::string method;
  r.read("auth_method", method);
  route.auth_method = method.empty() ? default_method : auth_method_from(method);
  return route;
}

// `base` holds the top-level values when parsing a database's overrides.
probes::KeepaliveSettings parse_keepalive(SectionReader& r, probes::KeepaliveSettings base) {
  using std::chrono::seconds;
  if (r.read("idle", base.idle) && base.idle < seconds{1}) r.fail("idle", "must be at least 1s");
  if (r.read("interval", base.interval) && base.interval < seconds{1}) {
    r.fail("interval", "must be at least 1s");
  }
  if (r.read("count", base.count) && base.count < 1) r.fail("count", "must be at least 1");
  // parse_duration already refuses negative values; 0 leaves the kernel default in place.
  r.read("user_timeout", base.user_timeout);
  return base;
}

probes::PingSettings parse_ping(SectionReader& r, probes::PingSettings base) {
  if (r.read("interval", base.interval) && base.interval <= milliseconds{0}) {
    r.fail("interval", "must be above 0");
  }
  if (r.read("timeout", base.timeout) && base.timeout <= milliseconds{0}) {
    r.fail("timeout", "must be above 0");
  }
  if (r.read("jitter", base.jitter) && (base.jitter < 0.0 || base.jitter > 0.5)) {
    r.fail("jitter", "must be from 0 to 0.5");
  }
  r.read("query", base.query);
  // A timeout as long as the interval would let pings overlap on one connection.
  if (base.timeout >= base.interval) {
    r.fail(r.has("timeout") ? "timeout" : "interval", "timeout (" + format_duration(base.timeout) +
                                                          ") must be below interval (" +
                                                          format_duration(base.interval) + ")");
  }
  return base;
}

pool::ReconnectSettings parse_reconnect(SectionReader& r, pool::ReconnectSettings base) {
  if (r.read("initial_delay", base.initial_delay) && base.initial_delay <= milliseconds{0}) {
    r.fail("initial_delay", "must be above 0");  // 0 would reconnect in a busy loop
  }
  r.read("max_delay", base.max_delay);
  r.read("max_delay_while_clients_wait", base.max_delay_while_clients_wait);
  if (base.max_delay < base.initial_delay) {
    r.fail(r.has("max_delay") ? "max_delay" : "initial_delay",
           "max_delay (" + format_duration(base.max_delay) + ") must be at least initial_delay (" +
               format_duration(base.initial_delay) + ")");
  }
  if (base.max_delay_while_clients_wait < base.initial_delay ||
      base.max_delay_while_clients_wait > base.max_delay) {
    r.fail(r.has("max_delay_while_clients_wait") ? "max_delay_while_clients_wait" : "max_delay",
           "max_delay_while_clients_wait (" + format_duration(base.max_delay_while_clients_wait) +
               ") must be from initial_delay (" + format_duration(base.initial_delay) +
               ") to max_delay (" + format_duration(base.max_delay) + ")");
  }
  return base;
}

pool::PoolSettings parse_pool(SectionReader& r, pool::PoolSettings base) {
  if (r.read("min_idle", base.min_idle) && base.min_idle < 0) {
    r.fail("min_idle", "must not be negative");
  }
  if (r.read("max_size", base.max_size) && base.max_size < 1) {
    r.fail("max_size", "must be at least 1");
  }
  if (r.read("shards", base.shards) && base.shards < 1) {
    r.fail("shards", "must be at least 1");
  }
  if (base.shards > base.max_size) {
    r.fail(r.has("shards") ? "shards" : "max_size",
           "shards (" + std::to_string(base.shards) + ") must not exceed max_size (" +
               std::to_string(base.max_size) + "): every shard needs a connection");
  }
  if (base.min_idle > base.max_size) {
    r.fail(r.has("min_idle") ? "min_idle" : "max_size",
           "min_idle (" + std::to_string(base.min_idle) + ") must not exceed max_size (" +
               std::to_string(base.max_size) + ")");
  }
  if (r.read("connect_timeout", base.connect_timeout) && base.connect_timeout <= milliseconds{0}) {
    r.fail("connect_timeout", "must be above 0");
  }
  if (r.read("checkout_timeout", base.checkout_timeout) &&
      base.checkout_timeout <= milliseconds{0}) {
    r.fail("checkout_timeout", "must be above 0");
  }
  r.read("max_lifetime", base.max_lifetime);
  if (r.read("lifetime_jitter", base.lifetime_jitter) &&
      (base.lifetime_jitter < 0.0 || base.lifetime_jitter >= 1.0)) {
    r.fail("lifetime_jitter", "must be at least 0 and below 1");
  }
  r.read("idle_timeout", base.idle_timeout);
  r.read("validate_after_idle", base.validate_after_idle);
  if (r.read("max_prepared_statements", base.max_prepared_statements) &&
      base.max_prepared_statements < 0) {
    r.fail("max_prepared_statements", "must not be negative");
  }
  r.read("client_request_timeout", base.client_request_timeout);
  r.read("idle_transaction_timeout", base.idle_transaction_timeout);
  r.read("client_idle_timeout", base.client_idle_timeout);
  r.read("query_timeout", base.query_timeout);
  r.read("fail_fast", base.fail_fast);
  SectionReader reconnect = r.section("reconnect");
  base.reconnect = parse_reconnect(reconnect, base.reconnect);
  reconnect.finish();
  return base;
}

// The error names the file or the variable, never what it holds.
std::string load_password(SectionReader& r, const EnvLookup& env) {
  std::string file;
  std::string variable;
  r.read("password_file", file);
  r.read("password_env", variable);
  if (!file.empty() && !variable.empty()) {
    r.fail("password_env", "set at most one of password_file and password_env");
  }
  if (!file.empty()) {
    std::filesystem::path path(file);
    if (path.is_relative()) path = std::filesystem::path(r.source()).parent_path() / path;
    int error = 0;
    auto text = read_file(path.string(), error);
    if (!text)
      r.fail("password_file", "cannot read " + path.string() + ": " + std::strerror(error));
    while (!text->empty() && (text->back() == '\n' || text->back() == '\r')) text->pop_back();
    if (text->empty()) r.fail("password_file", path.string() + " is empty");
    return *text;
  }
  if (!variable.empty()) {
    auto value = env(variable);
    if (!value) r.fail("password_env", "environment variable " + variable + " is not set");
    if (value->empty()) r.fail("password_env", "environment variable " + variable + " is empty");
    return *value;
  }
  return {};
}

struct DatabaseDefaults {
  pool::PoolSettings pool;
  probes::KeepaliveSettings keepalive;
  probes::PingSettings ping;
};

pool::PoolConfig parse_database(SectionReader& r, const std::string& name,
                                const DatabaseDefaults& defaults, const EnvLookup& env) {
  pool::PoolConfig db;
  db.name = name;
  pool::ServerEndpoint& server = db.server;
  server.dbname = name;
  if (r.read("host", server.host) && server.host.empty()) r.fail("host", "must not be empty");
  r.read("port", server.port);
  if (r.read("dbname", server.dbname) && server.dbname.empty()) {
    r.fail("dbname", "must not be empty");
  }
  if (!r.read("user", server.user)) r.fail("user", "required key is missing");
  if (server.user.empty()) r.fail("user", "must not be empty");
  server.password = load_password(r, env);
  r.read("application_name", server.application_name);

  // libpq's own defaults apply to what is left out; sslmode is always stated so a stray
  // PGSSLMODE in the daemon's environment cannot weaken it.
  std::string sslmode = "prefer";
  r.read("sslmode", sslmode);
  server.tls["sslmode"] = sslmode;
  for (const char* key : {"sslrootcert", "sslcert", "sslkey", "sslcrl"}) {
    std::string value;
    if (r.read(key, value) && !value.empty()) server.tls[key] = value;
  }

  SectionReader pool = r.section("pool", "pool");
  db.pool = parse_pool(pool, defaults.pool);
  pool.finish();
  SectionReader keepalive = r.section("keepalive", "keepalive");
  db.keepalive = parse_keepalive(keepalive, defaults.keepalive);
  keepalive.finish();
  SectionReader ping = r.section("ping", "ping");
  db.ping = parse_ping(ping, defaults.ping);
  ping.finish();
  return db;
}

}  // namespace

Config parse_config(const std::string& yaml_text, const std::string& source_name,
                    const EnvLookup& env) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::ParserException& e) {
    detail::throw_config_error(source_name, e.mark, "yaml", e.msg);
  }

  Config config;
  config.source_path = source_name;
  // Database entries' readers record nothing: their keys reach the pools as PoolConfig.
  SectionReader top(root, YAML::Mark{}, "", "", source_name, &config.effective_values);
  if (top.read("workers", config.workers) && config.workers < 0) {
    top.fail("workers", "must not be negative (0 starts one per CPU core)");
  }
  if (config.workers > 1024) top.fail("workers", "must be at most 1024");
  if (top.read("shutdown_timeout", config.shutdown_timeout) &&
      config.shutdown_timeout < std::chrono::milliseconds{0}) {
    top.fail("shutdown_timeout", "must not be negative");
  }

  SectionReader log = top.section("log");
  config.log = parse_log(log);
  log.finish();
  SectionReader admin = top.section("admin");
  config.admin = parse_admin(admin);
  admin.finish();
  SectionReader systemd = top.section("systemd");
  std::string ready_when = "listening";
  systemd.read("ready_when", ready_when);
  config.systemd.ready_when_pools_healthy = ready_when == "pools_healthy";
  systemd.finish();
  SectionReader reload = top.section("reload");
  reload.read("watch_file", config.reload.watch_file);
  reload.finish();
  SectionReader listen = top.section("listen");
  parse_listen(listen, config.proxy);
  listen.finish();
  if (config.proxy.listen.host.empty() && config.proxy.listen.unix_socket_dir.empty()) {
    top.fail("listen", "address and unix_socket_dir are both empty: clients could not connect");
  }
  // Kept open until the databases are read: the users_file check may have to point into it.
  SectionReader auth = top.section("auth");
  parse_auth(auth, config.proxy);
  auth.finish();

  // Parsed before the databases: they are the base each database's overrides apply to.
  DatabaseDefaults defaults;
  SectionReader keepalive = top.section("keepalive");
  defaults.keepalive = parse_keepalive(keepalive, defaults.keepalive);
  keepalive.finish();
  SectionReader ping = top.section("ping");
  defaults.ping = parse_ping(ping, defaults.ping);
  ping.finish();
  SectionReader pool = top.section("pool");
  defaults.pool = parse_pool(pool, defaults.pool);
  pool.finish();

  const std::vector<detail::MapEntry> databases = top.entries("databases");
  if (databases.empty()) top.fail("databases", "at least one database is required");
  for (const detail::MapEntry& entry : databases) {
    SectionReader db(entry.value, entry.key_node.Mark(), "databases." + std::string(kDatabaseName),
                     "databases." + entry.key, source_name);
    config.databases.push_back(parse_database(db, entry.key, defaults, env));
    config.routes.push_back(parse_route(db, entry.key, config.proxy.auth_method));
    // The relay's keys that are read with the pool's.
    const auto& pool_settings = config.databases.back().pool;
    config.routes.back().max_prepared_statements = pool_settings.max_prepared_statements;
    config.routes.back().client_request_timeout = pool_settings.client_request_timeout;
    config.routes.back().idle_transaction_timeout = pool_settings.idle_transaction_timeout;
    config.routes.back().client_idle_timeout = pool_settings.client_idle_timeout;
    config.routes.back().query_timeout = pool_settings.query_timeout;
    config.routes.back().query_cancel_grace = config.databases.back().ping.timeout;
    config.routes.back().server_silence_suspect = config.databases.back().ping.interval;
    if (config.proxy.users_file.empty() && config.proxy.auth_method == proxy::AuthMethod::trust &&
        needs_users_file(config.routes.back().auth_method)) {
      db.fail("auth_method", "needs auth.users_file, which is empty");
    }
    db.finish();
  }
  const auto needing =
      std::find_if(config.routes.begin(), config.routes.end(),
                   [](const proxy::RouteSettings& r) { return needs_users_file(r.auth_method); });
  if (needing != config.routes.end() && config.proxy.users_file.empty()) {
    // Reached when auth.method itself asks for passwords (trust + override failed above).
    auth.fail("users_file", "required: database " + needing->database +
                                " authenticates clients with md5 or scram-sha-256");
  }
  if (!config.proxy.users_file.empty()) check_users_file(auth, config.proxy.users_file);
  top.finish();
  return config;
}

Config load_config(const std::string& path) {
  int error = 0;
  const auto text = read_file(path, error);
  if (!text)
    throw ConfigError(path, 1, 1, "(file)", std::string("cannot read: ") + std::strerror(error));
  return parse_config(*text, path, [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  });
}

}  // namespace pgvigil::daemon
