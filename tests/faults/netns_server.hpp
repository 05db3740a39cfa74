#pragma once
// A PostgreSQL behind a link the test can break: a network namespace of our own (veth pair,
// 10.231.X.0/30), a throwaway PostgreSQL inside it listening on the inside address, and nftables
// faults on that path. pgvigil, in the root namespace, reaches it at address():port().
//
// Destruction undoes everything in reverse: the fault table, the server, the namespace and its
// veth. A frozen (SIGSTOPped) server is thawed first so that stopping it cannot hang.
//
//   auto server = NetnsServer::start();
//   server->black_hole();   // the path goes silent
//   server->heal();

#include <cstdint>
#include <memory>
#include <string>

#include "tests/faults/network_namespace.hpp"
#include "tests/faults/packet_filter.hpp"
#include "tests/support/pg_cluster.hpp"

namespace pgvigil::testing {

class NetnsServer {
 public:
  // cluster_options as for PgCluster; listen_address, port and command_prefix are ours, and
  // `host all all <host side>/32 trust` is appended to hba_lines (the caller's lines come first
  // and so win, e.g. "host all scram_user all scram-sha-256"). Throws std::runtime_error.
  static std::unique_ptr<NetnsServer> start(PgCluster::Options cluster_options = {});
  ~NetnsServer();
  NetnsServer(const NetnsServer&) = delete;
  NetnsServer& operator=(const NetnsServer&) = delete;

  PgCluster& cluster() { return *cluster_; }
  const std::string& address() const { return namespace_.inside_address(); }
  const std::string& client_address() const { return namespace_.outside_address(); }
  std::uint16_t port() const { return cluster_->port(); }
  const std::string& namespace_name() const { return namespace_.name(); }

  void black_hole() { filter_.black_hole(); }
  void reset() { filter_.reset(); }
  void heal() { filter_.heal(); }
  // SIGCONT to the postmaster and its children: undoes a test's SIGSTOP. Harmless otherwise.
  void thaw();

 private:
  NetnsServer();

  // Declaration order is the set-up order; destruction runs the other way round.
  NetworkNamespace namespace_;
  PacketFilter filter_;
  std::unique_ptr<PgCluster> cluster_;
};

}  // namespace pgvigil::testing
