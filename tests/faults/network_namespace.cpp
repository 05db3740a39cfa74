#include "tests/faults/network_namespace.hpp"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <regex>
#include <sstream>
#include <stdexcept>

#include "tests/faults/system_command.hpp"

namespace pgvigil::testing {
namespace {

std::atomic<int> next_instance{0};

// The /30 blocks the root namespace already uses, as "10.231.X." prefixes.
bool subnet_taken(const std::string& ip, int x) {
  const auto addresses = run_checked({ip, "-4", "-o", "address", "show"});
  return addresses.find(" 10.231." + std::to_string(x) + ".") != std::string::npos;
}

// Kills every process in namespace `name`; they were started there by a test of ours.
void kill_inside(const std::string& ip, const std::string& name) {
  const auto pids = run_command({ip, "netns", "pids", name});
  std::istringstream lines(pids.output);
  for (pid_t pid = 0; lines >> pid;) ::kill(pid, SIGKILL);
}

}  // namespace

NetworkNamespace::NetworkNamespace() : ip_(require_tool("ip", "iproute2")) {
  remove_stale();
  const int instance = next_instance++;
  name_ = "pgv" + std::to_string(::getpid()) + "_" + std::to_string(instance);
  outside_link_ = name_ + "h";
  inside_link_ = name_ + "n";
  // X from the pid so concurrent test processes start far apart; then the first free one.
  int x = static_cast<int>((::getpid() + instance * 37) % 254) + 1;
  for (int tries = 0; subnet_taken(ip_, x); ++tries) {
    if (tries == 254) throw std::runtime_error("NetworkNamespace: every 10.231.X.0/30 is in use");
    x = x % 254 + 1;
  }
  const std::string prefix = "10.231." + std::to_string(x) + ".";
  outside_address_ = prefix + "1";
  inside_address_ = prefix + "2";
  try {
    create();
  } catch (...) {
    remove();
    throw;
  }
}

NetworkNamespace::~NetworkNamespace() { remove(); }

std::vector<std::string> NetworkNamespace::exec_prefix() const {
  // nsenter switches only the network namespace. `ip netns exec` also makes a mount namespace
  // and remounts / as a slave, which fails where / is not a mount point (a chroot).
  return {"/usr/bin/nsenter", "--net=/run/netns/" + name_, "--"};
}

void NetworkNamespace::create() {
  run_checked({ip_, "netns", "add", name_});
  // The peer is created directly inside, so its name never meets the root namespace's.
  run_checked({ip_, "link", "add", outside_link_, "type", "veth", "peer", "name", inside_link_,
               "netns", name_});
  run_checked({ip_, "address", "add", outside_address_ + "/30", "dev", outside_link_});
  run_checked({ip_, "link", "set", outside_link_, "up"});
  const auto inside = exec_prefix();
  auto in_ns = [&inside](std::vector<std::string> args) {
    auto argv = inside;
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  };
  run_checked(in_ns({ip_, "address", "add", inside_address_ + "/30", "dev", inside_link_}));
  run_checked(in_ns({ip_, "link", "set", inside_link_, "up"}));
  // The server's own Unix-socket-free local traffic (stats collector, pg_ctl's checks) needs lo.
  run_checked(in_ns({ip_, "link", "set", "lo", "up"}));
}

void NetworkNamespace::remove() noexcept {
  try {
    // Processes first: a namespace with processes in it outlives `ip netns del` (only its name
    // goes), and so would the veth and its address.
    kill_inside(ip_, name_);
    // Deleting one end of a veth pair deletes both; errors mean it is already gone.
    run_command({ip_, "link", "delete", outside_link_});
    run_command({ip_, "netns", "delete", name_});
  } catch (const std::exception&) {
    // A destructor must not throw; the next run's remove_stale() takes what is left.
  }
}

void NetworkNamespace::remove_stale() {
  const auto ip = require_tool("ip", "iproute2");
  const auto list = run_command({ip, "netns", "list"});
  static const std::regex ours(R"(^(pgv([0-9]+)_[0-9]+)\b)");
  std::istringstream lines(list.output);
  for (std::string line; std::getline(lines, line);) {
    std::smatch match;
    if (!std::regex_search(line, match, ours)) continue;
    const pid_t owner = static_cast<pid_t>(std::stol(match[2].str()));
    if (owner == ::getpid()) continue;
    if (::kill(owner, 0) == 0 || errno != ESRCH) continue;  // its test is still running
    const std::string name = match[1].str();
    kill_inside(ip, name);
    run_command({ip, "link", "delete", name + "h"});
    run_command({ip, "netns", "delete", name});
  }
}

}  // namespace pgvigil::testing
