#include "tests/faults/system_command.hpp"

#include <fstream>
#include <iterator>
#include <stdexcept>

#include "tests/support/subprocess.hpp"
#include "tests/support/temp_dir.hpp"

namespace pgvigil::testing {
namespace {

std::string joined(const std::vector<std::string>& argv) {
  std::string text;
  for (const auto& arg : argv) text += (text.empty() ? "" : " ") + arg;
  return text;
}

}  // namespace

std::string require_tool(const std::string& name, const std::string& package) {
  const auto path = find_executable(name);
  if (!path) {
    throw std::runtime_error("the fault suite needs `" + name + "` (Debian package " + package +
                             "); it is not installed");
  }
  return path->string();
}

CommandResult run_command(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  if (argv.empty()) throw std::invalid_argument("run_command: empty argv");
  auto resolved = argv;
  const auto path = find_executable(argv.front());
  if (!path) throw std::runtime_error("run_command: `" + argv.front() + "` not found");
  resolved.front() = path->string();
  // A private directory per call: output files of concurrent callers never mix.
  TempDir scratch("pgvigil-cmd-");
  const auto output_file = scratch.path() / "output";
  CommandResult result;
  result.exit_code = run_process(resolved, output_file, scratch.path(), timeout);
  std::ifstream in(output_file, std::ios::binary);
  result.output.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return result;
}

std::string run_checked(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  auto result = run_command(argv, timeout);
  if (result.exit_code != 0) {
    throw std::runtime_error("`" + joined(argv) + "` exited with " +
                             std::to_string(result.exit_code) + ": " + result.output);
  }
  return result.output;
}

}  // namespace pgvigil::testing
