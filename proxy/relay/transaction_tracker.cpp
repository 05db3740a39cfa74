#include "proxy/relay/transaction_tracker.hpp"

namespace pgvigil::proxy::relay {

bool TransactionTracker::on_client_message(const MessageHeader& header) {
  switch (header.type) {
    case 'Q':  // simple query: answered by ReadyForQuery
    case 'F':  // function call: likewise
      ++pending_ready_;
      ++queries_;
      return true;
    case 'S':  // Sync closes an extended-protocol batch
      ++pending_ready_;
      unsynced_ = false;
      return true;
    case 'E':
      ++queries_;
      unsynced_ = true;
      return true;
    case 'P':
    case 'B':
    case 'D':
    case 'C':
      unsynced_ = true;
      return true;
    case 'X':
      refusal_ = Refusal::terminate;
      return false;
    default:  // d c f (COPY data), p (only during authentication)
      return true;
  }
}

void TransactionTracker::on_server_message(const MessageHeader& header) {
  if (header.type != 'Z') return;
  if (pending_ready_ > 0) --pending_ready_;
  status_ = static_cast<char>(header.first_body_byte);
  if (status_ == 'I') ++transactions_;  // an explicit transaction ended, or an implicit one
}

}  // namespace pgvigil::proxy::relay
