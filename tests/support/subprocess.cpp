#include "tests/support/subprocess.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>

#include "tests/support/wait_until.hpp"

namespace pgvigil::testing {

std::optional<std::filesystem::path> find_executable(const std::string& name) {
  if (name.find('/') != std::string::npos) {
    if (::access(name.c_str(), X_OK) == 0) return std::filesystem::path(name);
    return std::nullopt;
  }
  const char* env_path = std::getenv("PATH");
  std::string search = env_path != nullptr ? env_path : "/usr/local/bin:/usr/bin:/bin";
  search += ":/usr/sbin:/sbin";
  std::istringstream dirs(search);
  for (std::string dir; std::getline(dirs, dir, ':');) {
    if (dir.empty()) continue;
    const auto candidate = std::filesystem::path(dir) / name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return std::nullopt;
}

pid_t spawn_process(const std::vector<std::string>& argv, const std::filesystem::path& output_file,
                    const std::filesystem::path& cwd) {
  if (argv.empty()) throw std::invalid_argument("spawn_process: empty argv");
  // Everything the child needs is prepared before fork(): after fork in a threaded process only
  // async-signal-safe calls are allowed, so no allocation happens in the child.
  std::vector<char*> args;
  for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  const int output = ::open(output_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (output < 0) {
    throw std::system_error(errno, std::generic_category(), "open " + output_file.string());
  }
  const int null_input = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  // The child reports a failed exec by writing errno here; a successful exec closes the pipe.
  int report[2];
  if (null_input < 0 || ::pipe2(report, O_CLOEXEC) != 0) {
    const int error = errno;
    ::close(output);
    if (null_input >= 0) ::close(null_input);
    throw std::system_error(error, std::generic_category(), "spawn_process: pipe");
  }
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    // dup2 clears FD_CLOEXEC on the copies, so only 0, 1 and 2 survive the exec.
    int error = 0;
    if (::dup2(null_input, 0) < 0 || ::dup2(output, 1) < 0 || ::dup2(output, 2) < 0 ||
        ::chdir(cwd.c_str()) != 0) {
      error = errno;
    } else {
      ::execv(args[0], args.data());
      error = errno;
    }
    (void)!::write(report[1], &error, sizeof(error));
    ::_exit(127);
  }
  const int fork_error = errno;
  ::close(report[1]);
  ::close(output);
  ::close(null_input);
  if (pid < 0) {
    ::close(report[0]);
    throw std::system_error(fork_error, std::generic_category(), "fork");
  }
  int child_error = 0;
  ssize_t got;
  do {
    got = ::read(report[0], &child_error, sizeof(child_error));
  } while (got < 0 && errno == EINTR);
  ::close(report[0]);
  if (got == static_cast<ssize_t>(sizeof(child_error))) {
    ::waitpid(pid, nullptr, 0);
    throw std::system_error(child_error, std::generic_category(), "exec " + argv[0]);
  }
  return pid;
}

int exit_code_from_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

std::optional<int> try_reap(pid_t pid) {
  int status = 0;
  pid_t result;
  do {
    result = ::waitpid(pid, &status, WNOHANG);
  } while (result < 0 && errno == EINTR);
  if (result == pid) return exit_code_from_status(status);
  if (result < 0) return -1;  // not our child (already reaped): treat as ended
  return std::nullopt;
}

ChildGroup::~ChildGroup() {
  if (reaped_) return;
  ::kill(-pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
}

std::optional<int> ChildGroup::try_reap() {
  auto code = pgvigil::testing::try_reap(pid_);
  if (code) reaped_ = true;
  return code;
}

int run_process(const std::vector<std::string>& argv, const std::filesystem::path& output_file,
                const std::filesystem::path& cwd, std::chrono::milliseconds timeout) {
  const pid_t pid = spawn_process(argv, output_file, cwd);
  std::optional<int> code;
  if (wait_until([&] { return (code = try_reap(pid)).has_value(); }, timeout,
                 std::chrono::milliseconds(10))) {
    return *code;
  }
  ::kill(-pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  throw std::runtime_error(argv[0] + " did not finish within " + std::to_string(timeout.count()) +
                           " ms; output in " + output_file.string());
}

std::string file_tail(const std::filesystem::path& file, std::size_t max_bytes) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return "";
  std::ostringstream all;
  all << in.rdbuf();
  std::string text = all.str();
  return text.size() > max_bytes ? text.substr(text.size() - max_bytes) : text;
}

}  // namespace pgvigil::testing
