#pragma once
// Knows, from the messages both sides sent, when a server connection may go back to the pool:
// every request the client made has been answered with ReadyForQuery, no extended-protocol
// message awaits its Sync, nothing is half-sent, and the last status was idle.

#include <cstdint>

#include "proxy/relay/message_scanner.hpp"

namespace pgvigil::proxy::relay {

class TransactionTracker {
 public:
  // A client message header. Returns false for Terminate, which ends the session: pgvigil
  // keeps the server connection (reported through refusal()).
  bool on_client_message(const MessageHeader& header);
  void on_server_message(const MessageHeader& header);

  enum class Refusal : std::uint8_t { none, terminate };
  Refusal refusal() const { return refusal_; }

  // Requests sent and not yet answered by ReadyForQuery.
  int pending_ready() const { return pending_ready_; }
  char status() const { return status_; }  // the last ReadyForQuery status: 'I', 'T' or 'E'
  // Extended-protocol messages were sent since the last Sync.
  bool unsynced() const { return unsynced_; }
  bool idle_and_answered(bool client_at_boundary) const {
    return client_at_boundary && pending_ready_ == 0 && !unsynced_ && status_ == 'I';
  }
  // Queries and transactions seen since the last call, for the metrics.
  struct Counts {
    std::uint64_t queries;
    std::uint64_t transactions;
  };
  Counts take_counts() {
    Counts counts{queries_, transactions_};
    queries_ = transactions_ = 0;
    return counts;
  }

 private:
  int pending_ready_ = 0;
  bool unsynced_ = false;  // extended-protocol messages sent since the last Sync
  char status_ = 'I';
  Refusal refusal_ = Refusal::none;
  // Taken at the end of every transaction (and at a relay's byte threshold), so 32 bits do: a
  // session is this object's size times the idle clients (memory per idle client).
  std::uint32_t queries_ = 0;
  std::uint32_t transactions_ = 0;
};

}  // namespace pgvigil::proxy::relay
