#pragma once
// The whole configuration, as parsed and validated from config.yaml.

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "pool/pool_settings.hpp"
#include "proxy/proxy_settings.hpp"

namespace pgvigil::daemon {

struct LogSettings {
  std::string level = "info";   // trace, debug, info, warn, error
  std::string format = "text";  // text (journald-friendly) or json
};

struct AdminSettings {
  std::string host = "127.0.0.1";  // loopback only by default
  std::uint16_t port = 9930;
  std::string token_file;  // admin.token_file, resolved against the config file's directory
  // Its content: what a control request (POST /pause) must bring as a bearer token. Secret:
  // never logged.
  std::string token;
  // admin.tls: HTTPS with this certificate and key (resolved paths); "": plain HTTP.
  std::string tls_cert_file;
  std::string tls_key_file;
  stream::ServerTlsContext tls;  // made from them when the config is read; null without
};

struct SystemdSettings {
  bool ready_when_pools_healthy = false;  // systemd.ready_when: pools_healthy (else listening)
};

struct ReloadSettings {
  bool watch_file = false;  // reload on a change of the file, not only on SIGHUP
};

struct Config {
  std::string source_path;  // the file it was read from
  int workers = 0;          // event-loop threads; 0: one per core
  std::chrono::milliseconds shutdown_timeout{30000};  // drain: transactions may finish this long
  LogSettings log;
  AdminSettings admin;
  SystemdSettings systemd;
  ReloadSettings reload;
  std::vector<pool::PoolConfig> databases;
  proxy::ProxySettings proxy;  // listen.* and auth.*; users_file resolved against source_path
  // One per database, same order as `databases`; RouteSettings::database is the entry's name and
  // auth_method is already the effective one (auth.method unless the database overrides it).
  std::vector<proxy::RouteSettings> routes;
  // Every top-level key's value after parsing, in canonical text, by its table path (the
  // section reader's EffectiveValues). The reload compares the restart-only keys with these.
  std::map<std::string, std::string, std::less<>> effective_values;
};

}  // namespace pgvigil::daemon
