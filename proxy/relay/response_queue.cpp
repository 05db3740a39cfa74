#include "proxy/relay/response_queue.hpp"

namespace pgvigil::proxy::relay {

bool ResponseQueue::expect(OwedAnswer answer) {
  if (skipping_) {
    // The server skips everything up to the Sync: nothing is owed for it, and nothing of
    // pgvigil's is made (a direct connection would answer nothing either).
    if (answer.owed != Owed::sync) return false;
    skipping_ = false;
  }
  // A client that pipelines without pause may never let the queue run empty: the answered
  // front is dropped once it is most of the vector, so the room stays bounded by what is owed.
  if (next_ >= kCompactAfter && next_ * 2 >= owed_.size()) {
    owed_.erase(owed_.begin(), owed_.begin() + static_cast<std::ptrdiff_t>(next_));
    next_ = 0;
  }
  owed_.push_back(std::move(answer));
  return true;
}

void ResponseQueue::undo(const OwedAnswer& answer, ServerStatements& server,
                         ClientStatements& client) {
  const bool parse = answer.owed == Owed::parse || answer.owed == Owed::own_parse ||
                     answer.owed == Owed::made_parse_complete;
  if (!parse) return;
  if (!answer.statement.empty()) server.forget(answer.statement);
  // A client's Parse that failed leaves the client without the statement, as on a direct
  // connection (unless the client has since prepared that name again).
  if (!answer.client_name.empty()) client.remove_if(answer.client_name, answer.text);
}

void ResponseQueue::skip_to_sync(ServerStatements& server, ClientStatements& client) {
  while (!none_owed() && front().owed != Owed::sync) {
    undo(front(), server, client);
    pop_front();
  }
  // The error's Sync has not been sent yet: what comes before it is skipped as it is planned.
  if (none_owed()) skipping_ = true;
}

bool ResponseQueue::terminal(Owed owed, char type) {
  switch (owed) {
    case Owed::parse:
    case Owed::own_parse:
      return type == '1';
    case Owed::bind:
      return type == '2';
    case Owed::close:
    case Owed::own_close:
      return type == '3';
    case Owed::describe_statement:
      if (type == 't') {
        after_parameter_description_ = true;
        return false;
      }
      if ((type == 'T' || type == 'n') && after_parameter_description_) {
        after_parameter_description_ = false;
        return true;
      }
      return false;
    case Owed::describe_portal:
      return type == 'T' || type == 'n';
    case Owed::execute:
    case Owed::execute_deallocate:
      return type == 'C' || type == 'I' || type == 's';
    case Owed::sync:
    case Owed::query:
    case Owed::function_call:
    case Owed::deallocate:
      return type == 'Z';
    case Owed::made_parse_complete:
    case Owed::made_close_complete:
      return false;  // made by take_made, never answered by the server
  }
  return false;
}

}  // namespace pgvigil::proxy::relay
