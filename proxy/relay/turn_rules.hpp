#pragma once
// When a peer's turn ends, for the relay's reads (stream::SocketStream::async_read_some): a read
// whose bytes end the turn claims the socket drained, so the next read waits without a system
// call that would fail. Pure: each rule looks only at the bytes of one read.

#include <algorithm>
#include <iterator>
#include <span>

#include "proxy/relay/message_scanner.hpp"

namespace pgvigil::proxy::relay {

// What a rule does besides answering: nothing.
struct NoNotice {
  void operator()() const {}
};

// The client's turn ends with a complete Query or Sync, after which a client waits for the
// answer before it sends more. It scans a copy of the relay's scanner, so it knows where
// messages begin in the new bytes. on_ended() is called when it says the turn ended: the bytes
// in hand then hold a whole request, which the relay need not scan again to know it.
template <typename OnEnded = NoNotice>
struct RequestEnded {
  MessageScanner scanner;  // the relay's client scanner as it was before this read
  [[no_unique_address]] OnEnded on_ended = {};

  bool operator()(std::span<const char> bytes) {
    char last = 0;
    const auto verdict = scanner.scan(bytes, [&last](const MessageHeader& header) {
      last = header.type;
      return true;
    });
    if (verdict != MessageScanner::Verdict::ok || !scanner.at_boundary()) return false;
    const bool ended = last == 'Q' || last == 'S';
    if (ended) on_ended();
    return ended;
  }
};
RequestEnded(MessageScanner)->RequestEnded<>;
template <typename OnEnded>
RequestEnded(MessageScanner, OnEnded) -> RequestEnded<OnEnded>;

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
