#pragma once
// Running the administration tools the fault suite needs (ip, nft) and failing loudly: a network
// fixture that half-exists would make every later assertion meaningless.

#include <chrono>
#include <string>
#include <vector>

namespace pgvigil::testing {

struct CommandResult {
  int exit_code = 0;
  std::string output;  // stdout and stderr interleaved
};

// Runs argv (argv[0] a bare name, looked up like find_executable) to completion within timeout.
// Throws std::runtime_error when the tool is missing or does not finish in time.
CommandResult run_command(const std::vector<std::string>& argv,
                          std::chrono::milliseconds timeout = std::chrono::seconds(20));

// run_command, but a non-zero exit code also throws, quoting the command and its output.
std::string run_checked(const std::vector<std::string>& argv,
                        std::chrono::milliseconds timeout = std::chrono::seconds(20));

// The absolute path of a tool, or std::runtime_error naming the Debian package to install.
std::string require_tool(const std::string& name, const std::string& package);

}  // namespace pgvigil::testing
