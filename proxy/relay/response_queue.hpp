#pragma once
// The answers a server connection owes, in the order the requests went out, so that the relay
// can keep the stream a client sees exactly as a direct connection would give it while pgvigil
// changes what goes to the server: it swallows the answers to requests of its own (a Parse that
// prepares a client's statement on a connection that lacks it, a Close that keeps the
// connection's statements within their limit) and makes the answers to requests it kept from
// the server (a Parse of a statement the connection already has, a Close of a client's
// statement), each at the place the server's would have been. Pure: no I/O.
//
// A request's answer ends with its terminal message (ParseComplete, BindComplete, CloseComplete,
// CommandComplete, ReadyForQuery, ...). After an ErrorResponse to an extended-protocol request
// the server skips everything up to the next Sync, so the answers owed for those requests are
// dropped too: pgvigil's made answers are not sent, and its own Parses did not happen.

#include <cstdint>
#include <deque>
#include <string>

#include "proxy/relay/prepared_statements.hpp"

namespace pgvigil::proxy::relay {

enum class Owed : std::uint8_t {
  // Requests that went to the server; their answers go on to the client.
  parse,  // a client's Parse (named ones name the server statement it prepares)
  bind,
  describe_statement,  // ParameterDescription, then RowDescription or NoData
  describe_portal,     // RowDescription or NoData
  execute,             // rows, then CommandComplete, EmptyQueryResponse or PortalSuspended
  close,               // a Close of a portal
  sync,                // ReadyForQuery
  query,               // a simple Query: everything up to ReadyForQuery
  function_call,       // FunctionCallResponse, then ReadyForQuery
  // pgvigil's own requests: their answers are swallowed.
  own_parse,  // prepares `statement` on the server
  own_close,  // closes a statement the connection's limit evicted
  // Requests pgvigil answered itself: the answer is made when its turn comes.
  made_parse_complete,
  made_close_complete,
};

class ResponseQueue {
 public:
  // A request has been planned for the server (or answered by pgvigil), in stream order.
  // statement: the server name a parse or own_parse prepares ("" for the unnamed one).
  void expect(Owed owed, std::string statement = {});

  // What the relay does with one server message.
  enum class Disposition : std::uint8_t {
    pass,     // on to the client
    swallow,  // an answer to pgvigil's own request
    desync,   // not an answer the queue expects: the connection's state is unknown
  };
  // A whole server message of `type` arrived. Before it, made(const char* bytes, size) is called
  // for every answer pgvigil makes whose turn has come; the server's statements learn which of
  // pgvigil's Parses took effect. The answers due after it are made by the next call, or by
  // take_made() at the end of what the server sent.
  template <typename Made>
  Disposition on_server_message(char type, ServerStatements* statements, Made&& made);
  // The made answers whose turn has come with nothing owed by the server before them (the
  // client may be waiting for them with no server message to come, after a Flush).
  template <typename Made>
  void take_made(Made&& made);

  bool empty() const { return owed_.empty() && !skipping_; }
  // Clears everything, as when the server connection goes back between transactions.
  void clear() {
    owed_.clear();
    skipping_ = false;
    after_parameter_description_ = false;
  }

 private:
  struct Entry {
    Owed owed;
    std::string statement;
  };
  // The requests an ErrorResponse answers for good, after which the server skips to the Sync.
  // (A simple Query, a function call and a Sync answer an error with ReadyForQuery after it.)
  static bool ends_with_error(Owed owed) {
    return owed != Owed::query && owed != Owed::function_call && owed != Owed::sync;
  }
  // The server answered an extended request with an error: it skips up to the next Sync.
  void skip_to_sync(ServerStatements* statements);
  bool terminal(Owed owed, char type);

  std::deque<Entry> owed_;
  bool skipping_ = false;  // an error was answered and its Sync is not planned yet
  bool after_parameter_description_ = false;  // a describe_statement has had its 't'
};

template <typename Made>
void ResponseQueue::take_made(Made&& made) {
  static constexpr char kParseComplete[] = {'1', 0, 0, 0, 4};
  static constexpr char kCloseComplete[] = {'3', 0, 0, 0, 4};
  while (!owed_.empty()) {
    const auto owed = owed_.front().owed;
    if (owed == Owed::made_parse_complete) {
      made(kParseComplete, sizeof kParseComplete);
    } else if (owed == Owed::made_close_complete) {
      made(kCloseComplete, sizeof kCloseComplete);
    } else {
      return;
    }
    owed_.pop_front();
  }
}

template <typename Made>
ResponseQueue::Disposition ResponseQueue::on_server_message(char type, ServerStatements* statements,
                                                            Made&& made) {
  // Messages that may come at any time belong to no request.
  if (type == 'N' || type == 'S' || type == 'A') return Disposition::pass;
  take_made(made);
  if (owed_.empty()) {
    // An error on its own is a FATAL before a close; anything else is out of order.
    return type == 'E' ? Disposition::pass : Disposition::desync;
  }
  Entry& head = owed_.front();
  const bool own = head.owed == Owed::own_parse || head.owed == Owed::own_close;
  if (type == 'E' && ends_with_error(head.owed)) {
    // The failed request's answer ends here; the error goes to the client even for one of
    // pgvigil's own (its Parse of a client's statement failed: the client's request fails).
    if (head.owed == Owed::parse || head.owed == Owed::own_parse) {
      if (statements && !head.statement.empty()) statements->forget(head.statement);
    }
    owed_.pop_front();
    after_parameter_description_ = false;
    skip_to_sync(statements);
    return Disposition::pass;
  }
  if (!terminal(head.owed, type)) return own ? Disposition::desync : Disposition::pass;
  if ((head.owed == Owed::parse || head.owed == Owed::own_parse) && statements &&
      !head.statement.empty()) {
    statements->confirm(head.statement);
  }
  owed_.pop_front();
  return own ? Disposition::swallow : Disposition::pass;
}

}  // namespace pgvigil::proxy::relay
