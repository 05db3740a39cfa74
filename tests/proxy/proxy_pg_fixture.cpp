#include "tests/proxy/proxy_pg_fixture.hpp"

#include <regex>

#include "tests/metrics/http_client.hpp"
#include "tests/support/free_port.hpp"
#include "tests/support/subprocess.hpp"
#include "tests/support/wait_until.hpp"

namespace pgvigil::testing {

std::unique_ptr<PgCluster> ProxyPgFixture::pg_;

void ProxyPgFixture::start_daemon(const ProxyOptions& options) {
  admin_port_ = free_tcp_port();
  port_ = free_tcp_port();
  std::string yaml;
  yaml += "workers: 2\n";
  yaml += "admin: {listen: \"127.0.0.1:" + std::to_string(admin_port_) + "\"}\n";
  yaml += "listen: {address: \"127.0.0.1:" + std::to_string(port_) + "\", unix_socket_dir: \"" +
          socket_dir().string() + "\"" +
          (options.listen_extra.empty() ? "" : ", " + options.listen_extra) + "}\n";
  yaml += "auth: {method: " + options.auth_method;
  if (!options.users_file.empty()) {
    const auto users = work_->path() / "users.txt";
    write_file(users, options.users_file);
    yaml += ", users_file: \"" + users.string() + "\"";
  }
  if (!options.auth_extra.empty()) yaml += ", " + options.auth_extra;
  yaml += "}\n";
  yaml += "ping: {interval: 1s, timeout: 500ms}\n";
  yaml += "pool: {min_idle: 1, max_size: 10, checkout_timeout: 5s}\n";
  yaml += "databases:\n";
  for (const auto& database : options.databases) {
    yaml += "  " + database.name + ":\n";
    yaml += "    host: 127.0.0.1\n";
    yaml += "    port: " + std::to_string(pg_->port()) + "\n";
    yaml += "    dbname: " + database.dbname + "\n";
    yaml += database.user_pools ? "    user_pools: true\n" : "    user: postgres\n";
    if (database.server_tls.empty()) yaml += "    sslmode: disable\n";
    for (const auto& line : database.server_tls) yaml += "    " + line + "\n";
    yaml += "    application_name: " + app_name_ + "\n";
    yaml += "    pool_mode: " + database.pool_mode + "\n";
    if (!database.auth_method.empty()) yaml += "    auth_method: " + database.auth_method + "\n";
    if (!database.pool.empty()) yaml += "    pool: " + database.pool + "\n";
    if (!database.ping.empty()) yaml += "    ping: " + database.ping + "\n";
    if (!database.tls_mode.empty()) yaml += "    tls_mode: " + database.tls_mode + "\n";
  }
  daemon_ = DaemonProcess::start(PGVIGIL_BINARY, yaml);
  const bool ready = wait_until(
      [&] {
        try {
          return test::http_get(kHost, admin_port_, "/readyz", seconds(2)).status == 200;
        } catch (const std::exception&) {
          return false;
        }
      },
      seconds(15));
  ASSERT_TRUE(ready) << "pgvigil not ready within 15 s; config:\n"
                     << yaml << "\nlog:\n"
                     << daemon_->log_text();
}

Ran ProxyPgFixture::psql_as(const std::string& database, const std::string& user,
                            const std::string& password, const std::string& sql) {
  return run_shell("PGPASSWORD='" + password +
                   "' psql -X -A -t -v ON_ERROR_STOP=1 'host=127.0.0.1 port=" +
                   std::to_string(port_) + " dbname=" + database + " user=" + user +
                   " connect_timeout=5 sslmode=disable' -c \"" + sql + "\" 2>&1");
}

Ran ProxyPgFixture::run_shell(const std::string& command, milliseconds timeout) {
  const auto output = work_->path() / ("command-" + std::to_string(++commands_) + ".log");
  Ran ran;
  ran.exit_code = run_process({"/bin/sh", "-c", command}, output, work_->path(), timeout);
  ran.output = read_file(output);
  return ran;
}

void ProxyPgFixture::ensure_bench_database() {
  static bool initialised = false;
  if (initialised) return;
  pg_->execute("CREATE DATABASE bench");
  const auto ran = run_shell("pgbench -i -s 1 -q -h 127.0.0.1 -p " + std::to_string(pg_->port()) +
                             " -U postgres bench 2>&1");
  ASSERT_EQ(ran.exit_code, 0) << ran.output;
  initialised = true;
}

void ProxyPgFixture::expect_pgbench_runs_and_is_counted(const std::string& database, const std::string& args) {
  const double before = metric("pgvigil_transactions_total", {{"pool", database}});
  const auto ran = run_shell(pgbench(database, args), seconds(30));
  EXPECT_EQ(ran.exit_code, 0) << args << ":\n" << ran.output;
  EXPECT_FALSE(contains(ran.output, "aborted")) << args << ":\n" << ran.output;
  std::smatch match;
  ASSERT_TRUE(std::regex_search(ran.output, match, std::regex(R"(tps = ([0-9.]+))")))
      << args << ":\n" << ran.output;
  EXPECT_GT(std::stod(match[1]), 0.0) << args;
  std::smatch processed;
  ASSERT_TRUE(std::regex_search(ran.output, processed,
                                std::regex(R"(actually processed: ([0-9]+))")))
      << ran.output;
  const double transactions = std::stod(processed[1]);
  EXPECT_GT(transactions, 0);
  // A session's counts are published when its relay ends: in session mode, when pgbench's
  // connections close, which may be a moment after pgbench exits.
  double after = 0;
  wait_until(
      [&] {
        after = metric("pgvigil_transactions_total", {{"pool", database}});
        return after - before >= transactions;
      },
      seconds(3));
  EXPECT_GE(after - before, transactions) << args << ": pgbench processed " << transactions
                                          << ", pgvigil counted " << after - before;
}

}  // namespace pgvigil::testing
