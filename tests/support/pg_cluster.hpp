#pragma once
// A throwaway PostgreSQL server for one test binary (or one test suite), started with
// initdb + pg_ctl the way PgBouncer's tests do. Tests that talk to a server use a real one: we
// never mock libpq.
//
// Layout: everything lives in a fresh /tmp/pgvigil-pg-XXXXXX/ (data/, server.log, tool.log, and
// the Unix socket), owned by user postgres when we run as root, because PostgreSQL refuses to
// run as root: initdb, pg_ctl and postgres then run via `runuser -u postgres --`.
// The server listens on 127.0.0.1 only (or Options::listen_address), on a free port (or
// Options::port), with fsync off. Options::command_prefix can run it inside a network namespace.
//
// Errors (initdb fails, server does not come up, SQL fails) throw std::runtime_error whose
// message names the server log and quotes its tail. The destructor stops the server with
// `pg_ctl -m immediate` and deletes the directory.
//
// Typical use, shared by a suite:
//   static std::unique_ptr<PgCluster> pg;
//   static void SetUpTestSuite() { pg = PgCluster::start_new({}); }
//   static void TearDownTestSuite() { pg.reset(); }

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tests/support/temp_dir.hpp"

namespace pgvigil::testing {

class PgCluster {
 public:
  struct Options {
    // Where initdb, pg_ctl and postgres live. Empty: $PGVIGIL_PG_BINDIR, else the directory CMake
    // found at configure time, else /usr/lib/postgresql/15/bin.
    std::filesystem::path bin_dir;
    std::uint16_t port = 0;  // 0: pick a free one (retried if another process takes it first)
    int max_connections = 50;
    // initdb -A: used for the default `local` and `host 127.0.0.1/32, ::1/128` lines.
    std::string default_auth = "trust";
    // Appended to postgresql.conf after ours, so they win: e.g. "ssl = on", "log_connections = on".
    std::vector<std::string> conf_lines;
    // Placed in pg_hba.conf *before* the defaults (first match wins), e.g.
    // "host all scram_user 127.0.0.1/32 scram-sha-256".
    std::vector<std::string> hba_lines;
    // Files written into the data dir before the first start, mode 0600, owned by the server
    // user: {"server.crt", pem}, {"server.key", pem} for ssl = on.
    std::vector<std::pair<std::string, std::string>> data_files;
    std::chrono::milliseconds start_timeout{60000};  // initdb, start and stop each
    // Prepended to every server tool's command line (initdb, pg_ctl), e.g. {"/usr/sbin/ip",
    // "netns", "exec", "pgv123_0"}: the postmaster then runs inside that network namespace.
    // argv[0] must be a path. Empty: the tools run directly.
    std::vector<std::string> command_prefix;
    // The one TCP address the server listens on, and what host() and conninfo() name. Other
    // addresses need their own hba_lines (only loopback gets the default lines).
    std::string listen_address = "127.0.0.1";
  };

  // initdb + start. Throws std::runtime_error (with the log tail) on failure.
  static std::unique_ptr<PgCluster> start_new(Options options);
  static std::unique_ptr<PgCluster> start_new() { return start_new(Options{}); }
  // A streaming standby of `primary` (pg_basebackup -R over the primary's Unix socket), hot
  // standby on, started on a port of its own. options.conf_lines are appended to the copied
  // postgresql.conf; bin_dir, hba_lines and data_files are not used (the primary's serve).
  static std::unique_ptr<PgCluster> start_standby_of(const PgCluster& primary,
                                                     Options options);
  static std::unique_ptr<PgCluster> start_standby_of(const PgCluster& primary) {
    return start_standby_of(primary, Options{});
  }

  ~PgCluster();
  PgCluster(const PgCluster&) = delete;
  PgCluster& operator=(const PgCluster&) = delete;

  // Starts the server and returns once it accepts connections (pg_ctl -w, then PQping until
  // PQPING_OK within start_timeout). No-op when already running.
  void start();
  // pg_ctl stop -m mode ("smart", "fast" or "immediate") and wait for the postmaster to exit.
  // No-op when not running.
  void stop(const std::string& mode = "fast");
  // What pg_ctl stop -m immediate does (SIGQUIT to the postmaster), returning as soon as the
  // postmaster has exited (polled every 5 ms, where pg_ctl polls every 100 ms): a caller timing
  // a crash knows when the server was gone.
  void crash();
  void restart(const std::string& mode = "fast");
  bool running() const { return running_; }

  // Stops the server, replaces the data dir with a freshly initdb'd one and starts it on the same
  // port: a different server (new system_identifier, no tables or roles of the old one) answering
  // at the same address, as after a failover.
  void reset_data_dir_like_failover();
  // pg_ctl promote -w: a standby becomes a primary and accepts writes once this returns.
  void promote();
  // Stops the server, replaces its data with a fresh base backup of `primary` and starts it on
  // the same port as that server's standby: an old primary rejoining after a failover.
  void rejoin_as_standby_of(const PgCluster& primary);

  std::string host() const { return options_.listen_address; }
  std::uint16_t port() const { return port_; }
  std::filesystem::path data_dir() const { return root_.path() / "data"; }
  std::filesystem::path socket_dir() const { return root_.path(); }
  std::filesystem::path log_path() const { return root_.path() / "server.log"; }
  // "host=127.0.0.1 port=... dbname=... user=... connect_timeout=10" (TCP, not the socket).
  std::string conninfo(const std::string& dbname = "postgres",
                       const std::string& user = "postgres") const;

  // Blocking libpq helpers, as superuser postgres on database postgres. Each opens its own
  // connection. Throw std::runtime_error with the libpq message when the statement fails.
  void execute(const std::string& sql) const;
  std::vector<std::string> query_column(const std::string& sql) const;  // first column, NULL -> ""
  std::string query_value(const std::string& sql) const;  // first row, first column; throws if none

  // pids of backends whose application_name matches (our own helper connection excluded).
  std::vector<pid_t> backend_pids(const std::string& application_name) const;
  // pg_terminate_backend(pid) and wait (up to 5 s) until the backend is gone. false if it was
  // not a backend or did not exit in time.
  bool terminate_backend(pid_t pid) const;
  // From data/postmaster.pid; -1 when not running.
  pid_t postmaster_pid() const;
  // The postmaster first, then its direct children (backends, checkpointer, ...), from /proc.
  std::vector<pid_t> child_pids() const;

 private:
  PgCluster(Options options, std::filesystem::path bin_dir);
  void init_data_dir();
  void base_backup_of(const PgCluster& primary);
  // start() on options_.port, or on a free port, retried if another process takes it first.
  void start_on_some_port();
  std::string helper_conninfo() const;  // Unix socket, superuser: see the first pg_hba line
  void run_tool(const std::string& tool, const std::vector<std::string>& args) const;
  void write_owned_file(const std::filesystem::path& path, const std::string& text,
                        bool append) const;
  [[noreturn]] void fail(const std::string& what) const;

  Options options_;
  std::filesystem::path bin_dir_;
  TempDir root_;
  std::uint16_t port_ = 0;
  bool running_ = false;
};

}  // namespace pgvigil::testing
