// A database entry of config.yaml and the sections it may override (database_section.hpp).
#include "daemon/database_section.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "daemon/duration.hpp"

namespace pgvigil::daemon::detail {
namespace {

using std::chrono::milliseconds;

}  // namespace

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

namespace {

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

}  // namespace

pool::PoolSettings parse_pool(SectionReader& r, pool::PoolSettings base) {
  if (r.read("min_idle", base.min_idle) && base.min_idle < 0) {
    r.fail("min_idle", "must not be negative");
  }
  if (r.read("max_size", base.max_size) && base.max_size < 1) {
    r.fail("max_size", "must be at least 1");
  }
  if (r.read("shards", base.shards) && base.shards < 0) {
    r.fail("shards", "must not be negative (0 splits the pool once per worker)");
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
  r.read("max_replication_lag", base.max_replication_lag);
  if (r.read("pause_timeout", base.pause_timeout) && base.pause_timeout <= milliseconds{0}) {
    r.fail("pause_timeout", "must be above 0");
  }
  SectionReader reconnect = r.section("reconnect");
  base.reconnect = parse_reconnect(reconnect, base.reconnect);
  reconnect.finish();
  return base;
}

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

pool::PoolConfig parse_database(SectionReader& r, const std::string& name,
                                const DatabaseDefaults& defaults, const EnvLookup& env) {
  pool::PoolConfig db;
  db.name = name;
  pool::ServerEndpoint& server = db.server;
  server.dbname = name;
  pool::ServerHost single;
  const bool host_given = r.read("host", single.host);
  if (host_given && single.host.empty()) r.fail("host", "must not be empty");
  r.read("port", single.port);
  std::vector<std::pair<std::string, std::uint16_t>> listed;
  if (r.read_hosts("hosts", single.port, listed) && !listed.empty() && host_given) {
    r.fail("hosts", "set host or hosts, not both (put " + single.host + " in hosts)");
  }
  server.hosts = {single};
  if (!listed.empty()) {
    server.hosts.clear();
    for (auto& [host, port] : listed) server.hosts.push_back({std::move(host), port});
  }
  std::string target;
  r.read("target_session_attrs", target);
  if (target.empty()) {
    target = server.hosts.size() > 1 ? "read-write" : "any";
  }
  server.target_session_attrs = *pool::parse_target_session_attrs(target);
  if (r.read("dbname", server.dbname) && server.dbname.empty()) {
    r.fail("dbname", "must not be empty");
  }
  r.read("user_pools", db.user_pools);
  const bool user_given = r.read("user", server.user);
  if (db.user_pools) {
    // Each client's pool logs in as the client: a role of the entry would be used by nobody.
    if (user_given) r.fail("user", "not used with user_pools: true (pools log in as each client)");
  } else {
    if (!user_given) r.fail("user", "required key is missing (or user_pools: true)");
    if (server.user.empty()) r.fail("user", "must not be empty");
  }
  server.password = load_password(r, env);
  if (db.user_pools && !server.password.empty()) {
    r.fail(r.has("password_file") ? "password_file" : "password_env",
           "not used with user_pools: true (each role's password is in auth.users_file)");
  }
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

}  // namespace pgvigil::daemon::detail
