#include "tests/faults/packet_filter.hpp"

#include "tests/faults/system_command.hpp"

namespace pgvigil::testing {
namespace {

constexpr const char* kTable = "inet pgvigil_fault";

// "add" then "delete" makes the removal succeed whether or not the table exists, and in the same
// batch as the new rules the switch is atomic: no packet sees a gap between two faults.
std::string clear_table() {
  return std::string("add table ") + kTable + "\ndelete table " + kTable + "\n";
}

}  // namespace

PacketFilter::PacketFilter(std::vector<std::string> exec_prefix, std::uint16_t port)
    : exec_prefix_(std::move(exec_prefix)),
      nft_(require_tool("nft", "nftables")),
      port_(std::to_string(port)) {}

PacketFilter::~PacketFilter() {
  try {
    heal();
  } catch (const std::exception&) {
    // The namespace is deleted next, and its tables with it.
  }
}

void PacketFilter::apply(const std::string& rules) {
  auto argv = exec_prefix_;
  // nft takes the whole batch as its arguments and runs it as one transaction.
  argv.insert(argv.end(), {nft_, rules});
  run_checked(argv);
}

void PacketFilter::black_hole() {
  // Priority -10: ahead of anything else at the filter hooks.
  const std::string drop = "tcp dport " + port_ + " drop; tcp sport " + port_ + " drop; ";
  apply(clear_table() + "table " + kTable + " {\n" +
        "  chain input { type filter hook input priority -10; policy accept; " + drop + "}\n" +
        "  chain output { type filter hook output priority -10; policy accept; " + drop + "}\n" +
        "}\n");
}

void PacketFilter::reset() {
  apply(clear_table() + "table " + kTable + " {\n" +
        "  chain input { type filter hook input priority -10; policy accept; tcp dport " + port_ +
        " reject with tcp reset; }\n" + "}\n");
}

void PacketFilter::heal() { apply(clear_table()); }

}  // namespace pgvigil::testing
