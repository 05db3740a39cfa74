#pragma once
// The rule a client read gives TurnReader (pool/turn_reader.hpp): the client's turn ends with a
// complete Query or Sync, after which a client waits for the answer before it sends more. It
// scans a copy of the relay's scanner, so it knows where messages begin in the new bytes. Pure.

#include <span>

#include "proxy/relay/message_scanner.hpp"

namespace pgvigil::proxy::relay {

struct RequestEnded {
  MessageScanner scanner;  // the relay's client scanner as it was before this read
  bool* claim;             // set when the read is claimed to have drained the socket

  bool operator()(std::span<const char> bytes) {
    char last = 0;
    const auto verdict = scanner.scan(bytes, [&last](const MessageHeader& header) {
      last = header.type;
      return true;
    });
    if (verdict != MessageScanner::Verdict::ok || !scanner.at_boundary()) return false;
    if (last != 'Q' && last != 'S') return false;
    *claim = true;
    return true;
  }
};

}  // namespace pgvigil::proxy::relay
