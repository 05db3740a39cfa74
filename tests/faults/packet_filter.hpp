#pragma once
// Network faults made by nftables inside a network namespace of ours (never the root
// namespace's rules): its own table `inet pgvigil_fault`, replaced atomically on every change.
//
// Real packet filtering, not a user-space relay: a relay would answer the kernel's keep-alive
// probes itself and so hide exactly what pgvigil must detect.

#include <cstdint>
#include <string>
#include <vector>

namespace pgvigil::testing {

class PacketFilter {
 public:
  // exec_prefix runs a command inside the namespace (NetworkNamespace::exec_prefix()); port is
  // the server's TCP port there.
  PacketFilter(std::vector<std::string> exec_prefix, std::uint16_t port);
  ~PacketFilter();  // heal()s, errors ignored
  PacketFilter(const PacketFilter&) = delete;
  PacketFilter& operator=(const PacketFilter&) = delete;

  // Drops every TCP packet to or from the port, in and out: the flow goes silent, as when a NAT
  // gateway or conntrack table forgets it. Nobody is told.
  void black_hole();
  // Answers every packet to the port with a TCP reset, as a middlebox that lost the flow does.
  void reset();
  // Removes the table: the path works again. No-op when nothing was injected.
  void heal();

 private:
  void apply(const std::string& rules);  // throws std::runtime_error quoting nft's output

  std::vector<std::string> exec_prefix_;
  std::string nft_;
  std::string port_;
};

}  // namespace pgvigil::testing
