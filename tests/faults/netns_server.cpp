#include "tests/faults/netns_server.hpp"

#include <signal.h>

namespace pgvigil::testing {
namespace {

// The namespace is ours alone, so the standard port is always free there.
constexpr std::uint16_t kServerPort = 5432;

}  // namespace

NetnsServer::NetnsServer() : filter_(namespace_.exec_prefix(), kServerPort) {}

std::unique_ptr<NetnsServer> NetnsServer::start(PgCluster::Options cluster_options) {
  std::unique_ptr<NetnsServer> server(new NetnsServer());
  cluster_options.command_prefix = server->namespace_.exec_prefix();
  cluster_options.listen_address = server->address();
  cluster_options.port = kServerPort;
  cluster_options.hba_lines.push_back("host all all " + server->client_address() + "/32 trust");
  // If this throws, server's destructor removes the namespace (PgCluster cleans up itself).
  server->cluster_ = PgCluster::start_new(std::move(cluster_options));
  return server;
}

NetnsServer::~NetnsServer() {
  if (cluster_) {
    thaw();
    // Without the fault table the server's shutdown is not disturbed by our own rules.
    try {
      filter_.heal();
    } catch (const std::exception&) {
    }
    cluster_.reset();
  }
  // filter_ and namespace_ are destroyed next, in that order.
}

void NetnsServer::thaw() {
  if (!cluster_) return;
  for (const pid_t pid : cluster_->child_pids()) ::kill(pid, SIGCONT);
}

}  // namespace pgvigil::testing
