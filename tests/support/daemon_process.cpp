#include "tests/support/daemon_process.hpp"

#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <stdexcept>

#include "tests/support/subprocess.hpp"
#include "tests/support/wait_until.hpp"

namespace pgvigil::testing {

std::unique_ptr<DaemonProcess> DaemonProcess::start(
    const std::filesystem::path& binary, const std::string& config_yaml,
    const std::vector<std::string>& extra_args,
    const std::vector<std::pair<std::string, std::string>>& environment) {
  std::unique_ptr<DaemonProcess> daemon(new DaemonProcess());
  daemon->write_config(config_yaml);
  std::vector<std::string> argv;
  if (!environment.empty()) {
    const auto env = find_executable("env");
    if (!env) throw std::runtime_error("env(1) not found");
    argv.push_back(env->string());
    for (const auto& [name, value] : environment) argv.push_back(name + "=" + value);
  }
  argv.insert(argv.end(), {binary.string(), "--config", daemon->config_path().string()});
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  daemon->pid_ = spawn_process(argv, daemon->log_path(), daemon->dir());
  return daemon;
}

DaemonProcess::~DaemonProcess() {
  if (pid_ > 0 && !poll_exit()) {
    // The whole group: a daemon (or a test script) may have children of its own.
    ::kill(-pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

void DaemonProcess::write_config(const std::string& config_yaml) const {
  // rename() is atomic, so a daemon reloading at any moment never reads a half-written file.
  const auto partial = dir_.path() / "config.yaml.partial";
  {
    std::ofstream out(partial, std::ios::trunc);
    out << config_yaml;
    if (!out) throw std::runtime_error("cannot write " + partial.string());
  }
  std::filesystem::rename(partial, config_path());
}

std::string DaemonProcess::log_text() const {
  std::ifstream in(log_path(), std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

bool DaemonProcess::wait_for_log(const std::string& needle, std::chrono::milliseconds timeout) {
  bool found = false;
  wait_until(
      [&] {
        // Check exit first: whatever it printed before exiting is then in the file.
        const bool exited = poll_exit();
        found = log_text().find(needle) != std::string::npos;
        return found || exited;
      },
      timeout);
  return found;
}

bool DaemonProcess::poll_exit() {
  if (!exit_code_ && pid_ > 0) exit_code_ = try_reap(pid_);
  return exit_code_.has_value();
}

bool DaemonProcess::running() { return !poll_exit(); }

bool DaemonProcess::send_signal(int sig) {
  // Never signal a reaped pid: the kernel may have given the number to another process.
  if (poll_exit()) return false;
  return ::kill(pid_, sig) == 0;
}

std::optional<int> DaemonProcess::wait_exit(std::chrono::milliseconds timeout) {
  wait_until([&] { return poll_exit(); }, timeout, std::chrono::milliseconds(10));
  return exit_code_;
}

}  // namespace pgvigil::testing
