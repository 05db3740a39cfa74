#pragma once
// A network namespace of our own, joined to the root namespace by a veth pair: a server started
// inside it is reached over a real link that the test can break (tests/faults/packet_filter).
//
// Names: namespace pgv<pid>_<n>, host-side link pgv<pid>_<n>h, inside link pgv<pid>_<n>n (the
// pid makes them unique per test process, n per instance). Addresses: the /30 10.231.X.0, host
// side .1 in the root namespace, inside .2, X derived from the pid and moved on while the
// root namespace already holds an address in that /30. Only these addresses and loopback are
// ever targets of the tests.
//
// Whatever the constructor set up before a failure is removed again before it throws. The
// destructor kills anything still running inside, then deletes the veth pair and the namespace.
// A test process that died (SIGKILL, ctest timeout) cannot clean up: the next construction removes
// every pgv<pid>_<n> namespace whose pid is no longer alive, with what runs in it.

#include <string>
#include <vector>

namespace pgvigil::testing {

class NetworkNamespace {
 public:
  // Throws std::runtime_error (quoting ip's output) when a step fails, e.g. when not root.
  NetworkNamespace();
  ~NetworkNamespace();
  NetworkNamespace(const NetworkNamespace&) = delete;
  NetworkNamespace& operator=(const NetworkNamespace&) = delete;

  const std::string& name() const { return name_; }
  const std::string& inside_address() const { return inside_address_; }    // 10.231.X.2
  const std::string& outside_address() const { return outside_address_; }  // 10.231.X.1
  // {"/usr/bin/nsenter", "--net=/run/netns/<name>", "--"}: prepended to a command, it runs
  // inside the namespace's network stack.
  std::vector<std::string> exec_prefix() const;

  // Deletes namespaces (and their host-side links) left by test processes that no longer run.
  static void remove_stale();

 private:
  void create();
  void remove() noexcept;

  std::string ip_;  // absolute path of ip(8)
  std::string name_;
  std::string outside_link_;
  std::string inside_link_;
  std::string inside_address_;
  std::string outside_address_;
};

}  // namespace pgvigil::testing
