#pragma once
// The pgvigil binary under test, run as a child process: end-to-end tests drive it from the
// outside (config file, signals, exit code, log lines) exactly as systemd or a user would.
//
// The config is written to <tmp>/config.yaml and the binary started as
//   <binary> --config <tmp>/config.yaml <extra_args...>
// in its own process group, stdin from /dev/null, stdout and stderr into <tmp>/output.log.
// The destructor SIGKILLs the process group if it is still running, then deletes <tmp>.
// Tests get the binary's path from the compile definition PGVIGIL_BINARY.

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tests/support/temp_dir.hpp"

namespace pgvigil::testing {

class DaemonProcess {
 public:
  // Throws std::system_error when the binary cannot be executed. `environment` adds (or
  // overrides) variables of the inherited environment, e.g. NOTIFY_SOCKET; the process is then
  // started through env(1), which execs the binary under the same pid.
  static std::unique_ptr<DaemonProcess> start(
      const std::filesystem::path& binary, const std::string& config_yaml,
      const std::vector<std::string>& extra_args = {},
      const std::vector<std::pair<std::string, std::string>>& environment = {});
  ~DaemonProcess();
  DaemonProcess(const DaemonProcess&) = delete;
  DaemonProcess& operator=(const DaemonProcess&) = delete;

  pid_t pid() const { return pid_; }
  std::filesystem::path config_path() const { return dir_.path() / "config.yaml"; }
  std::filesystem::path log_path() const { return dir_.path() / "output.log"; }
  std::filesystem::path dir() const { return dir_.path(); }  // scratch space for the test

  // Replaces the config file atomically (write + rename), e.g. before send_signal(SIGHUP).
  void write_config(const std::string& config_yaml) const;

  // Everything the process printed so far (stdout and stderr interleaved).
  std::string log_text() const;
  // true once log_text() contains needle; false at the deadline or when the process exits
  // without printing it.
  bool wait_for_log(const std::string& needle, std::chrono::milliseconds timeout);

  // kill(pid, sig) to the process itself (not its group). false if it has already exited.
  bool send_signal(int sig);
  // true while the process has not exited.
  bool running();
  // The exit code once the process has exited (128 + n when killed by signal n), nullopt if it is
  // still running at the deadline.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);

 private:
  DaemonProcess() : dir_("pgvigil-daemon-") {}
  bool poll_exit();  // reaps the child if it ended; true once exited

  TempDir dir_;
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
};

}  // namespace pgvigil::testing
