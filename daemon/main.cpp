// pgvigil: command line, configuration, logging, then the Application until a signal.

#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <iostream>

#include "daemon/admin_client.hpp"
#include "daemon/application.hpp"
#include "daemon/config_loader.hpp"
#include "daemon/logging.hpp"
#include "daemon/version.hpp"

int main(int argc, char** argv) {
  using namespace pgvigil::daemon;
  CLI::App cli{"pgvigil: keeps PostgreSQL server connections provably alive"};
  std::string config_path = "config.yaml";
  bool check_only = false;
  std::string log_level;
  std::string log_format;
  cli.add_option("-c,--config", config_path, "configuration file")->capture_default_str();
  cli.add_flag("--check", check_only, "validate the configuration and exit (0 valid, 1 invalid)");
  cli.add_option("--log-level", log_level, "override log.level")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  cli.add_option("--log-format", log_format, "override log.format")
      ->check(CLI::IsMember({"text", "json"}));
  cli.set_version_flag("-V,--version", std::string("pgvigil ") + kVersion);
  // Control commands for a running daemon, through its admin endpoint (admin_client.hpp).
  ControlCommand control;
  double wait_seconds = 30;
  auto* pause = cli.add_subcommand(
      "pause", "pause a database of the running daemon and wait until its transactions are done");
  pause->add_option("database", control.database, "database name, as in the config")->required();
  pause->add_option("--wait", wait_seconds, "seconds to wait for transactions in flight")
      ->capture_default_str();
  auto* resume = cli.add_subcommand("resume", "resume a paused database of the running daemon");
  resume->add_option("database", control.database, "database name, as in the config")->required();
  CLI11_PARSE(cli, argc, argv);

  Config config;
  try {
    config = load_config(config_path);
  } catch (const ConfigError& error) {
    std::cerr << error.what() << "\n";
    return 1;
  }
  if (pause->parsed() || resume->parsed()) {
    control.action = pause->parsed() ? "pause" : "resume";
    control.wait = std::chrono::milliseconds(static_cast<long long>(wait_seconds * 1000));
    return run_control_command(config, control);
  }
  if (check_only) {
    std::cout << config_path << ": valid (" << config.databases.size() << " database"
              << (config.databases.size() == 1 ? "" : "s") << ")\n";
    return 0;
  }
  // A peer that went away must be an error code on the write, never a signal that kills the
  // daemon: plain sends say MSG_NOSIGNAL, but OpenSSL's socket BIO writes with write(2).
  std::signal(SIGPIPE, SIG_IGN);
  setup_logging(log_level.empty() ? config.log.level : log_level,
                log_format.empty() ? config.log.format : log_format);
  try {
    Application application(std::move(config));
    return application.run();
  } catch (const std::exception& error) {
    // Start-up errors (an admin address that cannot be bound) are fatal, with a clear message.
    spdlog::critical("cannot start: {}", error.what());
    return 1;
  }
}
