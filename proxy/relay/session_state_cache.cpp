#include "proxy/relay/session_state_cache.hpp"

#include <functional>

namespace pgvigil::proxy::relay {

SessionState SessionStateCache::scan(std::string_view sql) {
  if (sql.size() > kMaxText) return scan_session_state(sql);
  auto& slot = slots_[std::hash<std::string_view>{}(sql) % kSlots];
  if (slot.used && slot.text == sql) return slot.state;
  // Taken over by the newer text: the slot's string keeps its capacity, so a worker whose texts
  // take turns in a slot does not allocate each time. A longer text gets a string of its own
  // size (assign would grow it to twice the old capacity): no slot holds more than kMaxText.
  if (slot.text.capacity() >= sql.size()) {
    slot.text.assign(sql);
  } else {
    slot.text = std::string(sql);
  }
  slot.state = scan_session_state(sql);
  slot.used = true;
  return slot.state;
}

}  // namespace pgvigil::proxy::relay
