#include "tests/support/pg_cluster.hpp"

#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "tests/support/free_port.hpp"
#include "tests/support/subprocess.hpp"
#include "tests/support/wait_until.hpp"

namespace pgvigil::testing {
namespace {

constexpr int kStartAttempts = 3;  // only when we chose the port: someone may take it first

std::filesystem::path default_bin_dir() {
  if (const char* env = std::getenv("PGVIGIL_PG_BINDIR"); env != nullptr && *env != '\0') {
    return env;
  }
#ifdef PGVIGIL_PG_BINDIR_DEFAULT
  return PGVIGIL_PG_BINDIR_DEFAULT;
#else
  return "/usr/lib/postgresql/15/bin";
#endif
}

// PostgreSQL refuses to run as root, so as root every server-side step runs as this user.
bool running_as_root() { return ::geteuid() == 0; }

struct PgConnDeleter {
  void operator()(PGconn* conn) const { PQfinish(conn); }
};
struct PgResultDeleter {
  void operator()(PGresult* result) const { PQclear(result); }
};
using ConnPtr = std::unique_ptr<PGconn, PgConnDeleter>;
using ResultPtr = std::unique_ptr<PGresult, PgResultDeleter>;

std::string quote_conf(const std::string& value) { return "'" + value + "'"; }

}  // namespace

std::unique_ptr<PgCluster> PgCluster::start_new(Options options) {
  auto bin_dir = options.bin_dir.empty() ? default_bin_dir() : options.bin_dir;
  if (::access((bin_dir / "initdb").c_str(), X_OK) != 0) {
    throw std::runtime_error("PgCluster: no initdb in " + bin_dir.string() +
                             " (install the postgresql package or set PGVIGIL_PG_BINDIR)");
  }
  std::unique_ptr<PgCluster> cluster(new PgCluster(std::move(options), std::move(bin_dir)));
  cluster->init_data_dir();
  cluster->start_on_some_port();
  return cluster;
}

std::unique_ptr<PgCluster> PgCluster::start_standby_of(const PgCluster& primary,
                                                       Options options) {
  std::unique_ptr<PgCluster> cluster(new PgCluster(std::move(options), primary.bin_dir_));
  cluster->base_backup_of(primary);
  cluster->start_on_some_port();
  return cluster;
}

void PgCluster::start_on_some_port() {
  const bool choose_port = options_.port == 0;
  for (int attempt = 1;; ++attempt) {
    port_ = choose_port ? free_tcp_port() : options_.port;
    try {
      start();
      return;
    } catch (const std::runtime_error&) {
      const bool port_taken =
          file_tail(log_path(), 2000).find("could not bind") != std::string::npos;
      if (!choose_port || !port_taken || attempt == kStartAttempts) throw;
    }
  }
}

void PgCluster::base_backup_of(const PgCluster& primary) {
  // Over the primary's Unix socket, which its first pg_hba.conf lines trust for replication.
  run_tool("pg_basebackup", {"-D", data_dir().string(), "-h", primary.socket_dir().string(), "-p",
                             std::to_string(primary.port()), "-U", "postgres", "-R", "-X",
                             "stream", "-c", "fast", "--no-sync"});
  // The copied postgresql.conf names the primary's socket directory; later lines win.
  std::ostringstream conf;
  conf << "\n# pgvigil test harness: standby\n"
       << "listen_addresses = " << quote_conf(options_.listen_address) << "\n"
       << "unix_socket_directories = " << quote_conf(socket_dir().string()) << "\n"
       << "hot_standby = on\n";
  for (const auto& line : options_.conf_lines) conf << line << "\n";
  write_owned_file(data_dir() / "postgresql.conf", conf.str(), /*append=*/true);
}

void PgCluster::promote() {
  const auto timeout_seconds =
      std::chrono::duration_cast<std::chrono::seconds>(options_.start_timeout).count() + 1;
  run_tool("pg_ctl", {"-D", data_dir().string(), "-w", "-t", std::to_string(timeout_seconds),
                      "promote"});
}

void PgCluster::rejoin_as_standby_of(const PgCluster& primary) {
  stop("fast");
  std::filesystem::remove_all(data_dir());
  base_backup_of(primary);
  start();
}

PgCluster::PgCluster(Options options, std::filesystem::path bin_dir)
    : options_(std::move(options)), bin_dir_(std::move(bin_dir)), root_("pgvigil-pg-") {
  if (running_as_root()) {
    const passwd* user = ::getpwnam("postgres");
    if (user == nullptr) {
      throw std::runtime_error("PgCluster: running as root but there is no user 'postgres'");
    }
    if (::chown(root_.path().c_str(), user->pw_uid, user->pw_gid) != 0) {
      throw std::runtime_error("PgCluster: chown " + root_.path().string() + " failed");
    }
  }
}

PgCluster::~PgCluster() {
  if (running_) {
    try {
      stop("immediate");
    } catch (const std::exception&) {
      // Fall through: make sure no postmaster outlives the test, whatever pg_ctl said.
    }
  }
  if (const pid_t pid = postmaster_pid(); pid > 0) ::kill(pid, SIGKILL);
  // root_ removes the directory after this body.
}

void PgCluster::write_owned_file(const std::filesystem::path& path, const std::string& text,
                                 bool append) const {
  {
    std::ofstream out(path, append ? std::ios::app : std::ios::trunc);
    out << text;
    if (!out) fail("PgCluster: cannot write " + path.string());
  }
  if (!append)
    std::filesystem::permissions(
        path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  if (running_as_root()) {
    const passwd* user = ::getpwnam("postgres");
    if (user == nullptr || ::chown(path.c_str(), user->pw_uid, user->pw_gid) != 0) {
      fail("PgCluster: cannot chown " + path.string());
    }
  }
}

void PgCluster::init_data_dir() {
  // trust for initdb itself; pg_hba.conf is rewritten below with the options' methods.
  run_tool("initdb", {"-D", data_dir().string(), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                      "--locale=C", "--no-sync", "--no-instructions"});
  std::ostringstream conf;
  conf << "\n# pgvigil test harness\n"
       << "listen_addresses = " << quote_conf(options_.listen_address) << "\n"
       << "unix_socket_directories = " << quote_conf(socket_dir().string()) << "\n"
       << "max_connections = " << options_.max_connections << "\n"
       << "shared_buffers = 16MB\n"
       << "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
       << "logging_collector = off\n"
       << "log_line_prefix = '%m [%p] %q%a '\n";
  for (const auto& line : options_.conf_lines) conf << line << "\n";
  write_owned_file(data_dir() / "postgresql.conf", conf.str(), /*append=*/true);

  // The first line keeps the harness's own helper connections (over the Unix socket) working
  // whatever the test does to the other methods; first match wins in pg_hba.conf.
  std::ostringstream hba;
  hba << "local all postgres trust\n"
      << "local replication postgres trust\n";  // a standby's base backup and stream
  for (const auto& line : options_.hba_lines) hba << line << "\n";
  hba << "local all all " << options_.default_auth << "\n"
      << "host all all 127.0.0.1/32 " << options_.default_auth << "\n"
      << "host all all ::1/128 " << options_.default_auth << "\n";
  write_owned_file(data_dir() / "pg_hba.conf", hba.str(), /*append=*/false);

  for (const auto& [name, contents] : options_.data_files) {
    write_owned_file(data_dir() / name, contents, /*append=*/false);
  }
}

void PgCluster::run_tool(const std::string& tool, const std::vector<std::string>& args) const {
  // The prefix goes first so that runuser and the tool, and the postmaster pg_ctl forks, all
  // inherit what it sets up (a network namespace).
  std::vector<std::string> argv = options_.command_prefix;
  if (running_as_root()) {
    const auto runuser = find_executable("runuser");
    if (!runuser) fail("PgCluster: running as root and runuser (util-linux) is not installed");
    argv.insert(argv.end(), {runuser->string(), "-u", "postgres", "--"});
  }
  argv.push_back((bin_dir_ / tool).string());
  argv.insert(argv.end(), args.begin(), args.end());
  const auto tool_log = root_.path() / "tool.log";
  // The tools run in our temp dir: the caller's cwd (e.g. under /root) may be unreadable for
  // user postgres.
  const int code = run_process(argv, tool_log, root_.path(), options_.start_timeout);
  if (code != 0) fail("PgCluster: " + tool + " exited with " + std::to_string(code));
}

void PgCluster::start() {
  if (running_) return;
  const auto timeout_seconds =
      std::chrono::duration_cast<std::chrono::seconds>(options_.start_timeout).count() + 1;
  // The port goes on the command line rather than into postgresql.conf so a retry on another
  // port does not have to edit the file.
  run_tool("pg_ctl",
           {"-D", data_dir().string(), "-l", log_path().string(), "-w", "-t",
            std::to_string(timeout_seconds), "-o", "-p " + std::to_string(port_), "start"});
  running_ = true;
  // pg_ctl -w already waits for "ready"; the ping proves the TCP listener answers too.
  const std::string ping_conninfo =
      "host=" + host() + " port=" + std::to_string(port_) + " connect_timeout=2";
  if (!wait_until([&] { return PQping(ping_conninfo.c_str()) == PQPING_OK; },
                  options_.start_timeout, std::chrono::milliseconds(50))) {
    fail("PgCluster: server on port " + std::to_string(port_) + " does not answer PQping");
  }
}

void PgCluster::stop(const std::string& mode) {
  if (!running_) return;
  const auto timeout_seconds =
      std::chrono::duration_cast<std::chrono::seconds>(options_.start_timeout).count() + 1;
  run_tool("pg_ctl", {"-D", data_dir().string(), "-m", mode, "-w", "-t",
                      std::to_string(timeout_seconds), "stop"});
  running_ = false;
}

void PgCluster::crash() {
  if (!running_) return;
  const pid_t pid = postmaster_pid();
  if (pid <= 0 || ::kill(pid, SIGQUIT) != 0) throw std::runtime_error("no postmaster to crash");
  // Gone, or a zombie its reaper has not collected yet (it has exited all the same).
  const auto exited = [pid] {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(stat, line)) return true;
    const auto after_name = line.rfind(')');
    return after_name == std::string::npos || line.substr(after_name + 2, 1) == "Z";
  };
  if (!wait_until(exited, std::chrono::seconds(30), std::chrono::milliseconds(5))) {
    throw std::runtime_error("the postmaster did not exit after SIGQUIT");
  }
  running_ = false;
}

void PgCluster::restart(const std::string& mode) {
  stop(mode);
  start();
}

void PgCluster::reset_data_dir_like_failover() {
  stop("fast");
  std::filesystem::remove_all(data_dir());
  init_data_dir();
  start();
}

std::string PgCluster::helper_conninfo() const {
  return "host=" + socket_dir().string() + " port=" + std::to_string(port_) +
         " dbname=postgres user=postgres connect_timeout=10";
}

std::string PgCluster::conninfo(const std::string& dbname, const std::string& user) const {
  return "host=" + host() + " port=" + std::to_string(port_) + " dbname=" + dbname +
         " user=" + user + " connect_timeout=10";
}

namespace {

// One statement on a fresh helper connection over the Unix socket.
ResultPtr run_sql(const std::string& conninfo, const std::string& sql,
                  const std::vector<std::string>& params) {
  ConnPtr conn(PQconnectdb(conninfo.c_str()));
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    throw std::runtime_error("PQconnectdb(" + conninfo + "): " + PQerrorMessage(conn.get()));
  }
  std::vector<const char*> values;
  for (const auto& param : params) values.push_back(param.c_str());
  ResultPtr result(PQexecParams(conn.get(), sql.c_str(), static_cast<int>(values.size()), nullptr,
                                values.data(), nullptr, nullptr, 0));
  const auto status = PQresultStatus(result.get());
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    throw std::runtime_error("PQexecParams(" + sql + "): " + PQerrorMessage(conn.get()));
  }
  return result;
}

std::vector<std::string> first_column(const PGresult* result) {
  std::vector<std::string> values;
  for (int row = 0; row < PQntuples(result); ++row) values.emplace_back(PQgetvalue(result, row, 0));
  return values;
}

}  // namespace

void PgCluster::execute(const std::string& sql) const {
  // PQexec, not PQexecParams: it allows several statements in one string.
  ConnPtr conn(PQconnectdb(helper_conninfo().c_str()));
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    throw std::runtime_error("PQconnectdb: " + std::string(PQerrorMessage(conn.get())));
  }
  ResultPtr result(PQexec(conn.get(), sql.c_str()));
  const auto status = PQresultStatus(result.get());
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    throw std::runtime_error("PQexec(" + sql + "): " + PQerrorMessage(conn.get()));
  }
}

std::vector<std::string> PgCluster::query_column(const std::string& sql) const {
  return first_column(run_sql(helper_conninfo(), sql, {}).get());
}

std::string PgCluster::query_value(const std::string& sql) const {
  auto values = query_column(sql);
  if (values.empty()) throw std::runtime_error("query_value(" + sql + "): no rows");
  return values.front();
}

std::vector<pid_t> PgCluster::backend_pids(const std::string& application_name) const {
  const auto result = run_sql(helper_conninfo(),
                              "SELECT pid FROM pg_stat_activity WHERE application_name = $1 "
                              "AND pid <> pg_backend_pid() ORDER BY pid",
                              {application_name});
  std::vector<pid_t> pids;
  for (const auto& value : first_column(result.get())) pids.push_back(std::stoi(value));
  return pids;
}

bool PgCluster::terminate_backend(pid_t pid) const {
  // The timeout argument (PostgreSQL 14+) makes the call wait until the backend has exited, so
  // the caller sees the connection gone, not merely signalled.
  const auto result = run_sql(helper_conninfo(), "SELECT pg_terminate_backend($1::int, 5000)",
                              {std::to_string(pid)});
  return first_column(result.get()) == std::vector<std::string>{"t"};
}

pid_t PgCluster::postmaster_pid() const {
  std::ifstream in(data_dir() / "postmaster.pid");
  pid_t pid = -1;
  if (!(in >> pid)) return -1;
  // A stale file may name a pid the kernel has since given to some other program.
  std::ifstream comm("/proc/" + std::to_string(pid) + "/comm");
  std::string name;
  if (!(comm >> name) || name != "postgres") return -1;
  return pid;
}

std::vector<pid_t> PgCluster::child_pids() const {
  const pid_t postmaster = postmaster_pid();
  if (postmaster <= 0) return {};
  std::vector<pid_t> pids{postmaster};
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", error)) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(entry.path() / "stat");
    std::string stat;
    try {
      stat.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    } catch (const std::ios_base::failure&) {
      continue;  // it exited between the listing and the read (ESRCH): not a child any more
    }
    // Format: "pid (comm) state ppid ...": comm may contain spaces and ')', so parse after the
    // last ')'.
    const auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 1));
    std::string state;
    pid_t parent = 0;
    if (rest >> state >> parent && parent == postmaster) pids.push_back(std::stoi(name));
  }
  return pids;
}

void PgCluster::fail(const std::string& what) const {
  throw std::runtime_error(what + "\n--- " + (root_.path() / "tool.log").string() +
                           " (tail) ---\n" + file_tail(root_.path() / "tool.log") +
                           "\n--- server log " + log_path().string() + " (tail) ---\n" +
                           file_tail(log_path()));
}

}  // namespace pgvigil::testing
