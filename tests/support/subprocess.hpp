#pragma once
// Starting and reaping child processes for the harness (initdb, pg_ctl, the daemon under test).
// fork/exec by hand rather than system(): no shell quoting, output goes to a file the test can
// read, and a failed exec is reported to the caller instead of looking like exit code 127.

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace pgvigil::testing {

// The absolute path of an executable: name itself when it contains '/', else the first match in
// $PATH, /usr/sbin, /sbin (root's PATH on a minimal system may lack the sbin dirs). nullopt if
// none.
std::optional<std::filesystem::path> find_executable(const std::string& name);

// Starts argv[0] (a path) with argv, stdin from /dev/null, stdout and stderr appended to
// output_file, working directory cwd, in a new process group (so the whole tree can be killed).
// Throws std::system_error if the file cannot be opened or the exec fails.
pid_t spawn_process(const std::vector<std::string>& argv, const std::filesystem::path& output_file,
                    const std::filesystem::path& cwd);

// A spawned process group that is killed (SIGKILL to the group) and reaped when the owner goes
// out of scope without having reaped it, so a test that stops at a failed ASSERT leaves no load
// running into the next test.
class ChildGroup {
 public:
  explicit ChildGroup(pid_t pid) : pid_(pid) {}
  ChildGroup(const ChildGroup&) = delete;
  ChildGroup& operator=(const ChildGroup&) = delete;
  ~ChildGroup();
  // The exit code once the process has ended (reaped then), nullopt while it runs.
  std::optional<int> try_reap();

 private:
  pid_t pid_;
  bool reaped_ = false;
};

// Runs argv to completion and returns its exit code (see exit_code_from_status). If it is still
// running after timeout its process group is killed and std::runtime_error thrown.
int run_process(const std::vector<std::string>& argv, const std::filesystem::path& output_file,
                const std::filesystem::path& cwd, std::chrono::milliseconds timeout);

// waitpid(WNOHANG): the exit code once pid has ended (it is then reaped), nullopt while running.
std::optional<int> try_reap(pid_t pid);

// The exit code of a wait status, or 128 + signal number when it was killed (shell convention).
int exit_code_from_status(int status);

// The last max_bytes of a file, for error messages ("" if it cannot be read).
std::string file_tail(const std::filesystem::path& file, std::size_t max_bytes = 4000);

}  // namespace pgvigil::testing
