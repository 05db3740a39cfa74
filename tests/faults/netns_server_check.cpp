// The fault harness itself: the faults it injects are real on the wire, and it leaves nothing
// behind, also after a test process that died without cleaning up.

#include <libpq-fe.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sstream>

#include "tests/faults/fault_fixture.hpp"
#include "tests/faults/network_namespace.hpp"
#include "tests/faults/system_command.hpp"

namespace pgvigil::testing {
namespace {

// A fresh connection attempt's outcome: "" when it worked, else libpq's message.
std::string try_connect(NetnsServer& server) {
  const std::string conninfo = "host=" + server.address() + " port=" +
                               std::to_string(server.port()) +
                               " dbname=postgres user=postgres connect_timeout=2";
  PGconn* conn = PQconnectdb(conninfo.c_str());
  std::string error = PQstatus(conn) == CONNECTION_OK ? "" : PQerrorMessage(conn);
  PQfinish(conn);
  return error;
}

TEST_F(FaultTest, HarnessFaultsAreRealOnTheWire) {
  EXPECT_EQ(try_connect(server()), "");
  server().black_hole();
  EXPECT_NE(try_connect(server()).find("timeout expired"), std::string::npos);
  server().reset();
  EXPECT_NE(try_connect(server()).find("Connection refused"), std::string::npos);
  server().heal();
  EXPECT_EQ(try_connect(server()), "");
  server().heal();  // idempotent
}

// `ip netns list` prints "name" or "name (id: N)", one a line.
bool namespace_exists(const std::string& name) {
  std::istringstream lines(run_checked({"ip", "netns", "list"}));
  for (std::string first; lines >> first; lines.ignore(1 << 16, '\n')) {
    if (first == name) return true;
  }
  return false;
}

TEST_F(FaultTest, HarnessLeavesNoNamespaceBehindAndRemovesStaleOnes) {
  std::string name;
  std::string link;
  {
    NetworkNamespace scratch;
    name = scratch.name();
    link = name + "h";
    EXPECT_TRUE(namespace_exists(name));
    EXPECT_EQ(run_command({"ip", "link", "show", link}).exit_code, 0);
  }
  EXPECT_FALSE(namespace_exists(name));
  EXPECT_NE(run_command({"ip", "link", "show", link}).exit_code, 0);

  // As a crashed run would leave it: a namespace named after a pid that no longer runs.
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ::waitpid(child, nullptr, 0);
  const std::string stale = "pgv" + std::to_string(child) + "_0";
  run_checked({"ip", "netns", "add", stale});
  NetworkNamespace::remove_stale();
  EXPECT_FALSE(namespace_exists(stale));
  run_command({"ip", "netns", "delete", stale});  // in case it failed
}

}  // namespace
}  // namespace pgvigil::testing
