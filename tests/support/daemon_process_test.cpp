// DaemonProcess, free_tcp_port and wait_until, exercised with /bin/sh stand-ins for pgvigil.

#include "tests/support/daemon_process.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <system_error>

#include "tests/support/free_port.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/wait_until.hpp"

namespace pgvigil::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// Writes an executable shell script standing in for the daemon.
std::filesystem::path write_script(const TempDir& dir, const std::string& body) {
  const auto path = dir.path() / "fake-pgvigil";
  std::ofstream(path) << "#!/bin/sh\n" << body;
  std::filesystem::permissions(path, std::filesystem::perms::owner_all);
  return path;
}

// Gone or a zombie: in a container PID 1 may never reap the orphans we create.
bool process_gone(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const auto close = text.rfind(')');
  return close == std::string::npos || text.substr(close + 2, 1) == "Z";
}

TEST(DaemonProcessTest, PassesConfigCapturesOutputAndReportsExitCode) {
  TempDir scripts("pgvigil-fake-");
  const auto binary = write_script(scripts,
                                   "echo \"args: $*\"\n"
                                   "cat \"$2\"\n"
                                   "echo oops >&2\n"
                                   "trap 'echo got TERM; exit 3' TERM\n"
                                   "echo ready\n"
                                   "while :; do sleep 0.05; done\n");
  auto daemon = DaemonProcess::start(binary, "admin:\n  port: 1234\n", {"--check"});
  ASSERT_TRUE(daemon->wait_for_log("ready", seconds(10))) << daemon->log_text();
  const auto log = daemon->log_text();
  EXPECT_NE(log.find("args: --config " + daemon->config_path().string() + " --check"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("port: 1234"), std::string::npos);
  EXPECT_NE(log.find("oops"), std::string::npos);
  EXPECT_TRUE(daemon->running());

  EXPECT_TRUE(daemon->send_signal(SIGTERM));
  EXPECT_EQ(daemon->wait_exit(seconds(10)), 3);
  EXPECT_TRUE(daemon->wait_for_log("got TERM", seconds(1)));
  EXPECT_FALSE(daemon->running());
  EXPECT_FALSE(daemon->send_signal(SIGTERM));
}

TEST(DaemonProcessTest, ReportsDeathBySignalAndTimesOut) {
  TempDir scripts("pgvigil-fake-");
  auto daemon = DaemonProcess::start(write_script(scripts, "exec sleep 1000\n"), "");
  EXPECT_EQ(daemon->wait_exit(milliseconds(50)), std::nullopt);
  EXPECT_TRUE(daemon->send_signal(SIGKILL));
  EXPECT_EQ(daemon->wait_exit(seconds(10)), 128 + SIGKILL);
}

TEST(DaemonProcessTest, WaitForLogGivesUpWhenTheProcessExits) {
  TempDir scripts("pgvigil-fake-");
  auto daemon = DaemonProcess::start(write_script(scripts, "echo bye\nexit 1\n"), "");
  const auto started = std::chrono::steady_clock::now();
  EXPECT_FALSE(daemon->wait_for_log("never printed", seconds(30)));
  EXPECT_LT(std::chrono::steady_clock::now() - started, seconds(10));
  EXPECT_EQ(daemon->wait_exit(seconds(1)), 1);
}

TEST(DaemonProcessTest, RewritesConfig) {
  TempDir scripts("pgvigil-fake-");
  auto daemon = DaemonProcess::start(write_script(scripts, "exec sleep 1000\n"), "a: 1\n");
  daemon->write_config("a: 2\n");
  std::ifstream in(daemon->config_path());
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "a: 2\n");
}

TEST(DaemonProcessTest, DestructorKillsTheWholeProcessGroup) {
  TempDir scripts("pgvigil-fake-");
  const auto child_pid_file = scripts.path() / "child.pid";
  const auto binary = write_script(
      scripts, "sleep 1000 &\necho $! > " + child_pid_file.string() + "\necho ready\nwait\n");
  auto daemon = DaemonProcess::start(binary, "");
  ASSERT_TRUE(daemon->wait_for_log("ready", seconds(10)));
  const pid_t shell = daemon->pid();
  pid_t child = 0;
  std::ifstream(child_pid_file) >> child;
  ASSERT_GT(child, 0);
  daemon.reset();
  EXPECT_TRUE(process_gone(shell));
  EXPECT_TRUE(wait_until([&] { return process_gone(child); }, seconds(10)));
}

TEST(DaemonProcessTest, MissingBinaryThrows) {
  EXPECT_THROW(DaemonProcess::start("/nonexistent/pgvigil", ""), std::system_error);
}

TEST(FreeTcpPortTest, ReturnsABindablePort) {
  const auto port = free_tcp_port();
  ASSERT_GT(port, 0);
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(port);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ::close(fd);
}

TEST(WaitUntilTest, ReturnsAsSoonAsTrueAndFalseAtTheDeadline) {
  int calls = 0;
  EXPECT_TRUE(wait_until([&] { return ++calls == 3; }, seconds(10), milliseconds(1)));
  EXPECT_EQ(calls, 3);
  const auto started = std::chrono::steady_clock::now();
  EXPECT_FALSE(wait_until([] { return false; }, milliseconds(100), milliseconds(10)));
  EXPECT_GE(std::chrono::steady_clock::now() - started, milliseconds(100));
  EXPECT_FALSE(wait_until([] { return false; }, milliseconds(0)));
}

}  // namespace
}  // namespace pgvigil::testing
