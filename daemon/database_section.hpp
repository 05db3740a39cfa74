#pragma once
// The parts of config.yaml a database entry is made of: its server and password, and the pool,
// keepalive and ping sections it may override (read at the top level as every database's
// defaults). Used by config_loader.cpp only.

#include <optional>
#include <string>

#include "daemon/config_loader.hpp"
#include "daemon/section_reader.hpp"
#include "pool/pool_settings.hpp"

namespace pgvigil::daemon::detail {

// Reads a whole file, or returns errno. POSIX calls rather than iostreams so the error is exact
// (EISDIR, EACCES) instead of a bare failbit.
std::optional<std::string> read_file(const std::string& path, int& error);

// `base` holds the top-level values when parsing a database's overrides.
probes::KeepaliveSettings parse_keepalive(SectionReader& r, probes::KeepaliveSettings base);
probes::PingSettings parse_ping(SectionReader& r, probes::PingSettings base);
pool::PoolSettings parse_pool(SectionReader& r, pool::PoolSettings base);

// The section's password_file or password_env ("" when neither is set). An error names the
// file or the variable, never what it holds.
std::string load_password(SectionReader& r, const EnvLookup& env);

struct DatabaseDefaults {
  pool::PoolSettings pool;
  probes::KeepaliveSettings keepalive;
  probes::PingSettings ping;
};

pool::PoolConfig parse_database(SectionReader& r, const std::string& name,
                                const DatabaseDefaults& defaults, const EnvLookup& env);

}  // namespace pgvigil::daemon::detail
