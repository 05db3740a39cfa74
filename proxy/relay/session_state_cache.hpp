#pragma once
// scan_session_state's answers for the statement texts a worker saw last. Drivers that use the
// extended protocol (pgjdbc, pgx, asyncpg, node-postgres with parameters) send the same Parse
// texts over and over with their values apart, and the scan reads every character of one at
// about 13 instructions each (callgrind): hashing the text and comparing it with the one
// remembered costs a tenth of that. A Query's text usually carries its values, so it is
// scanned afresh. Direct-mapped, a few slots, texts up to kMaxText bytes: a worker holds at most
// kSlots * kMaxText bytes of them. Not thread-safe: one per worker (thread_local).

#include <array>
#include <cstddef>
#include <string>
#include <string_view>

#include "proxy/relay/session_state.hpp"

namespace pgvigil::proxy::relay {

class SessionStateCache {
 public:
  static constexpr std::size_t kSlots = 64;
  static constexpr std::size_t kMaxText = 4096;

  // scan_session_state(sql), from the slot when it holds this very text.
  SessionState scan(std::string_view sql);

 private:
  struct Slot {
    std::string text;
    SessionState state;
    bool used = false;
  };
  std::array<Slot, kSlots> slots_;
};

}  // namespace pgvigil::proxy::relay
