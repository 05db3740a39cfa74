#pragma once
// When a peer's turn ends, for the relay's reads (stream::SocketStream::async_read_some): a read
// whose bytes end the turn claims the socket drained, so the next read waits without a system
// call that would fail. Pure: each rule looks only at the bytes of one read.

#include <algorithm>
#include <iterator>
#include <span>

#include "proxy/relay/message_scanner.hpp"

namespace pgvigil::proxy::relay {

// The client's turn ends with a complete Query or Sync, after which a client waits for the
// answer before it sends more. It scans a copy of the relay's scanner, so it knows where
// messages begin in the new bytes.
struct RequestEnded {
  MessageScanner scanner;  // the relay's client scanner as it was before this read

  bool operator()(std::span<const char> bytes) {
    char last = 0;
    const auto verdict = scanner.scan(bytes, [&last](const MessageHeader& header) {
      last = header.type;
      return true;
    });
    if (verdict != MessageScanner::Verdict::ok || !scanner.at_boundary()) return false;
    return last == 'Q' || last == 'S';
  }
};

// The server's turn ends with ReadyForQuery reporting an idle session ('Z', length 5, 'I'). Any
// other ending (in a transaction, a row, a notice) may be followed by more.
struct AnswerEnded {
  bool operator()(std::span<const char> bytes) const {
    static constexpr char kReadyIdle[] = {'Z', 0, 0, 0, 5, 'I'};
    return bytes.size() >= sizeof kReadyIdle &&
           std::equal(std::begin(kReadyIdle), std::end(kReadyIdle),
                      bytes.end() - static_cast<std::ptrdiff_t>(sizeof kReadyIdle));
  }
};

}  // namespace pgvigil::proxy::relay
