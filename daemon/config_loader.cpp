#include "daemon/config_loader.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "daemon/duration.hpp"
#include "daemon/database_section.hpp"
#include "daemon/section_reader.hpp"
#include "daemon/worker_count.hpp"
#include "proxy/auth/access_rules.hpp"

namespace pgvigil::daemon {
namespace {

using detail::DatabaseDefaults;
using detail::SectionReader;
using detail::parse_database;
using detail::parse_keepalive;
using detail::parse_ping;
using detail::parse_pool;
using detail::read_file;
using std::chrono::milliseconds;


LogSettings parse_log(SectionReader& r) {
  LogSettings log;
  r.read("level", log.level);
  r.read("format", log.format);
  return log;
}

// A file named in the config: relative paths are taken from the config file's directory.
std::string resolve_path(const SectionReader& r, const std::string& path) {
  std::filesystem::path resolved(path);
  if (resolved.is_relative()) resolved = std::filesystem::path(r.source()).parent_path() / resolved;
  return resolved.string();
}

// admin.tls: the endpoint's certificate, loaded now so that a bad file is a config error (at
// start, --check and reload) naming it.
void parse_admin_tls(SectionReader& r, AdminSettings& admin) {
  if (r.read("cert_file", admin.tls_cert_file) && !admin.tls_cert_file.empty()) {
    admin.tls_cert_file = resolve_path(r, admin.tls_cert_file);
  }
  if (r.read("key_file", admin.tls_key_file) && !admin.tls_key_file.empty()) {
    admin.tls_key_file = resolve_path(r, admin.tls_key_file);
  }
  if (admin.tls_cert_file.empty() != admin.tls_key_file.empty()) {
    r.fail(admin.tls_cert_file.empty() ? "cert_file" : "key_file",
           "cert_file and key_file go together: set both or neither");
  }
  if (admin.tls_cert_file.empty()) return;
  stream::ServerTlsFiles files;
  files.cert_file = admin.tls_cert_file;
  files.key_file = admin.tls_key_file;
  auto made = stream::make_server_tls(files);
  if (!made.context) r.fail(made.failed == stream::TlsFile::key ? "key_file" : "cert_file", made.error);
  admin.tls = std::move(made.context);
}

AdminSettings parse_admin(SectionReader& r) {
  AdminSettings admin;
  r.read_listen("listen", admin.host, admin.port);
  if (r.read("token_file", admin.token_file) && !admin.token_file.empty()) {
    admin.token_file = resolve_path(r, admin.token_file);
    int error = 0;
    auto text = read_file(admin.token_file, error);
    if (!text) r.fail("token_file", "cannot read " + admin.token_file + ": " + std::strerror(error));
    while (!text->empty() && (text->back() == '\n' || text->back() == '\r')) text->pop_back();
    // A short token can be guessed; the check is a plain comparison, so length is the defence.
    if (text->size() < 16) {
      r.fail("token_file", admin.token_file + " must hold a token of at least 16 characters");
    }
    admin.token = std::move(*text);
  }
  SectionReader tls = r.section("tls");
  parse_admin_tls(tls, admin);
  tls.finish();
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
  if (r.read("max_startup_connections", settings.max_startup_connections) &&
      settings.max_startup_connections < 0) {
    r.fail("max_startup_connections", "must not be negative (0: no bound)");
  }
  if (r.read("max_startup_per_address", settings.max_startup_per_address) &&
      settings.max_startup_per_address < 0) {
    r.fail("max_startup_per_address", "must not be negative (0: no bound)");
  }
  if (r.read("startup_timeout", settings.startup_timeout) &&
      settings.startup_timeout <= milliseconds{0}) {
    r.fail("startup_timeout", "must be above 0");  // 0 would drop every client at once
  }
  if (r.read("defer_accept", settings.defer_accept) &&
      settings.defer_accept > std::chrono::hours{1}) {
    r.fail("defer_accept", "must be at most 1h");  // the kernel takes an int of seconds
  }
  if (r.read("pack_until_busy", settings.pack_until_busy) &&
      !(settings.pack_until_busy >= 0 && settings.pack_until_busy <= 1)) {
    r.fail("pack_until_busy", "must be from 0 to 1 (a share of one core; 0: spread)");
  }
  // Read as int: the table's integer type is int, and every sane limit fits.
  int max_message_bytes = static_cast<int>(settings.max_message_bytes);
  if (r.read("max_message_bytes", max_message_bytes) && max_message_bytes < 1024) {
    r.fail("max_message_bytes", "must be at least 1024");  // a start-up packet alone can be ~1k
  }
  settings.max_message_bytes = static_cast<std::uint32_t>(max_message_bytes);
}

proxy::ClientTlsMode tls_mode_from(std::string_view text) {
  if (text == "disable") return proxy::ClientTlsMode::disable;
  if (text == "require") return proxy::ClientTlsMode::require;
  if (text == "verify-ca") return proxy::ClientTlsMode::verify_ca;
  if (text == "verify-full") return proxy::ClientTlsMode::verify_full;
  return proxy::ClientTlsMode::allow;  // the table allows nothing else
}

// listen.tls.*: the files are read and the TLS context made here, so that a missing file or a
// key that does not match its certificate is a config error with a position (at start, at
// --check, and at a reload, which then keeps the previous certificate).
void parse_listen_tls(SectionReader& r, proxy::ClientTlsSettings& tls) {
  auto& files = tls.files;
  std::string mode = "allow";
  r.read("mode", mode);
  tls.mode = tls_mode_from(mode);
  std::string min_protocol = "TLSv1.2";
  r.read("min_protocol", min_protocol);
  files.tls13_only = min_protocol == "TLSv1.3";
  if (r.read("cert_file", files.cert_file) && !files.cert_file.empty()) {
    files.cert_file = resolve_path(r, files.cert_file);
  }
  if (r.read("key_file", files.key_file) && !files.key_file.empty()) {
    files.key_file = resolve_path(r, files.key_file);
  }
  if (r.read("ca_file", files.ca_file) && !files.ca_file.empty()) {
    files.ca_file = resolve_path(r, files.ca_file);
  }
  if (files.cert_file.empty() != files.key_file.empty()) {
    r.fail(files.cert_file.empty() ? "cert_file" : "key_file",
           "cert_file and key_file go together: set both or neither");
  }
  if (files.cert_file.empty() || tls.mode == proxy::ClientTlsMode::disable) return;
  auto made = stream::make_server_tls(files);
  if (!made.context) {
    r.fail(made.failed == stream::TlsFile::key  ? "key_file"
           : made.failed == stream::TlsFile::ca ? "ca_file"
                                                : "cert_file",
           made.error);
  }
  tls.context = std::move(made.context);
}

// What a database's tls_mode (or the inherited listen.tls.mode) needs of listen.tls.
void check_tls_mode(const SectionReader& r, std::string_view key, proxy::ClientTlsMode mode,
                    const proxy::ClientTlsSettings& tls) {
  if (mode <= proxy::ClientTlsMode::allow) return;
  if (!tls.context) {
    r.fail(key, tls.mode == proxy::ClientTlsMode::disable
                    ? "needs TLS, but listen.tls.mode is disable"
                    : "needs TLS, but listen.tls.cert_file is empty");
  }
  if (mode >= proxy::ClientTlsMode::verify_ca && tls.files.ca_file.empty()) {
    r.fail(key, "checks client certificates, but listen.tls.ca_file is empty");
  }
}

proxy::AuthMethod auth_method_from(std::string_view text) {
  if (text == "md5") return proxy::AuthMethod::md5;
  if (text == "scram-sha-256") return proxy::AuthMethod::scram_sha_256;
  return proxy::AuthMethod::trust;  // the table allows nothing else
}

bool needs_users_file(proxy::AuthMethod method) { return method != proxy::AuthMethod::trust; }

// Somewhere to find clients' secrets: the users file, or auth.query.
bool has_secrets(const proxy::ProxySettings& settings) {
  return !settings.users_file.empty() || settings.auth_query.enabled();
}

void parse_auth_query(SectionReader& r, proxy::AuthQuerySettings& settings, const EnvLookup& env) {
  r.read("user", settings.user);
  settings.password = load_password(r, env);
  if (r.read("sql", settings.sql) && settings.sql.find("$1") == std::string::npos) {
    r.fail("sql", "must use $1, the user name being looked up");
  }
  if (r.read("cache_time", settings.cache_time) &&
      settings.cache_time < std::chrono::milliseconds::zero()) {
    r.fail("cache_time", "must not be negative");
  }
}

// auth.*: the users file is only resolved here; whether it is required is decided once the
// databases (which may override the method) are known.
void parse_auth(SectionReader& r, proxy::ProxySettings& settings, const EnvLookup& env) {
  std::string method = "trust";
  r.read("method", method);
  settings.auth_method = auth_method_from(method);
  if (r.read("users_file", settings.users_file) && !settings.users_file.empty()) {
    settings.users_file = resolve_path(r, settings.users_file);
  }
  SectionReader query = r.section("query");
  parse_auth_query(query, settings.auth_query, env);
  query.finish();
  if (r.read("hba_file", settings.hba_file) && !settings.hba_file.empty()) {
    settings.hba_file = resolve_path(r, settings.hba_file);
    // Read whole now (and at --check and every reload), so a bad line, or rules that the rest
    // of the config cannot serve, are config errors rather than clients refused later.
    auto rules = proxy::auth::load_access_rules(settings.hba_file);
    if (!rules) r.fail("hba_file", rules.error());
    if (rules->needs_passwords() && settings.users_file.empty() && !settings.auth_query.enabled()) {
      r.fail("hba_file", settings.hba_file +
                             ": md5 and scram-sha-256 rules need auth.users_file or auth.query, "
                             "and neither is set");
    }
    if (rules->needs_certificates() && (!settings.tls.context || settings.tls.files.ca_file.empty())) {
      r.fail("hba_file", settings.hba_file +
                             ": cert rules need client TLS with listen.tls.ca_file, which is not set");
    }
    settings.access_rules = std::make_shared<const proxy::auth::AccessRules>(std::move(rules).value());
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
                                 const proxy::ProxySettings& proxy) {
  const proxy::AuthMethod default_method = proxy.auth_method;
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
  std::string tls_mode;
  r.read("tls_mode", tls_mode);
  if (tls_mode.empty()) {
    route.tls_mode = proxy.tls.mode == proxy::ClientTlsMode::disable ? proxy::ClientTlsMode::allow
                                                                     : proxy.tls.mode;
  } else {
    route.tls_mode = tls_mode_from(tls_mode);
    check_tls_mode(r, "tls_mode", route.tls_mode, proxy.tls);
  }
  return route;
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
    top.fail("workers", "must not be negative (0 starts one per core the process may use)");
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
  SectionReader listen_tls = listen.section("tls");
  parse_listen_tls(listen_tls, config.proxy.tls);
  check_tls_mode(listen_tls, "mode", config.proxy.tls.mode, config.proxy.tls);
  listen_tls.finish();
  listen.finish();
  if (config.proxy.listen.host.empty() && config.proxy.listen.unix_socket_dir.empty()) {
    top.fail("listen", "address and unix_socket_dir are both empty: clients could not connect");
  }
  // Kept open until the databases are read: the users_file check may have to point into it.
  SectionReader auth = top.section("auth");
  parse_auth(auth, config.proxy, env);
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
  defaults.pool.shards = pool::kShardsPerWorker;  // resolved per database below
  defaults.pool = parse_pool(pool, defaults.pool);
  pool.finish();

  const std::vector<detail::MapEntry> databases = top.entries("databases");
  if (databases.empty()) top.fail("databases", "at least one database is required");
  for (const detail::MapEntry& entry : databases) {
    SectionReader db(entry.value, entry.key_node.Mark(), "databases." + std::string(kDatabaseName),
                     "databases." + entry.key, source_name);
    config.databases.push_back(parse_database(db, entry.key, defaults, env));
    auto& shards = config.databases.back().pool.shards;
    if (shards == pool::kShardsPerWorker) {
      shards = std::min(worker_count(config.workers), config.databases.back().pool.max_size);
    }
    config.routes.push_back(parse_route(db, entry.key, config.proxy));
    // The relay's keys that are read with the pool's.
    const auto& pool_settings = config.databases.back().pool;
    config.routes.back().max_prepared_statements = pool_settings.max_prepared_statements;
    config.routes.back().client_request_timeout = pool_settings.client_request_timeout;
    config.routes.back().idle_transaction_timeout = pool_settings.idle_transaction_timeout;
    config.routes.back().client_idle_timeout = pool_settings.client_idle_timeout;
    config.routes.back().query_timeout = pool_settings.query_timeout;
    config.routes.back().query_cancel_grace = config.databases.back().ping.timeout;
    config.routes.back().server_silence_suspect = config.databases.back().ping.interval;
    config.routes.back().user_pools = config.databases.back().user_pools;
    if (config.databases.back().user_pools && !has_secrets(config.proxy)) {
      db.fail("user_pools",
              "needs auth.users_file or auth.query: what the roles log in to the server with");
    }
    if (!has_secrets(config.proxy) && config.proxy.auth_method == proxy::AuthMethod::trust &&
        needs_users_file(config.routes.back().auth_method)) {
      db.fail("auth_method", "needs auth.users_file or auth.query, and neither is set");
    }
    db.finish();
  }
  const auto needing =
      std::find_if(config.routes.begin(), config.routes.end(),
                   [](const proxy::RouteSettings& r) { return needs_users_file(r.auth_method); });
  if (needing != config.routes.end() && !has_secrets(config.proxy)) {
    // Reached when auth.method itself asks for passwords (trust + override failed above).
    auth.fail("users_file", "required (or auth.query): database " + needing->database +
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
