#pragma once
// The command-line form of the admin endpoint's control requests: `pgvigil pause NAME` and
// `pgvigil resume NAME` send POST /pause or /resume to admin.listen of the config file, with
// the bearer token of admin.token_file when one is set.

#include <chrono>
#include <string>

#include "daemon/config.hpp"

namespace pgvigil::daemon {

struct ControlCommand {
  std::string action;    // "pause" or "resume"
  std::string database;  // as the config file names it
  // pause: how long to wait for the transactions in flight to finish (no server connection of
  // the database left open); 0: return at once.
  std::chrono::milliseconds wait{30000};
};

// Runs the command, printing what the daemon answered. 0: done (for pause: no server
// connection left open); 1: refused, failed or unreachable; 2: paused, but connections were
// still open when the wait ended.
int run_control_command(const Config& config, const ControlCommand& command);

}  // namespace pgvigil::daemon
