#pragma once
// The answers a server connection owes, in the order the requests went out, so that the relay
// can keep the stream a client sees exactly as a direct connection would give it while pgvigil
// changes what goes to the server: it swallows the answers to requests of its own (a Parse that
// prepares a client's statement on a connection that lacks it, a Close that keeps the
// connection's statements within their limit) and makes the answers to requests it kept from
// the server (a Parse of a statement the connection already has, a Close of a client's
// statement, a DEALLOCATE of one), each at the place the server's would have been. Pure: no I/O.
//
// A request's answer ends with its terminal message (ParseComplete, BindComplete, CloseComplete,
// CommandComplete, ReadyForQuery, ...). After an ErrorResponse to an extended-protocol request
// the server skips everything up to the next Sync, so the answers owed for those requests are
// dropped too: pgvigil's made answers are not sent, and the Parses skipped did not happen (the
// records of what they would have prepared are undone).

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/relay/prepared_statements.hpp"

namespace pgvigil::proxy::relay {

enum class Owed : std::uint8_t {
  // Requests that went to the server; their answers go on to the client.
  parse,  // a client's Parse (a named one prepares `statement` on the server)
  bind,
  describe_statement,  // ParameterDescription, then RowDescription or NoData
  describe_portal,     // RowDescription or NoData
  execute,             // rows, then CommandComplete, EmptyQueryResponse or PortalSuspended
  close,               // a Close of a portal or of the unnamed statement
  sync,                // ReadyForQuery
  query,               // a simple Query: everything up to ReadyForQuery
  function_call,       // FunctionCallResponse, then ReadyForQuery
  // pgvigil's own requests: their answers are swallowed.
  own_parse,  // prepares `statement` on the server for a client's Bind or Describe
  own_close,  // closes a statement the connection's limit evicted
  // Requests pgvigil answered itself: the answer is made when its turn comes.
  made_parse_complete,
  made_close_complete,
  // A client's DEALLOCATE of one of its statements, sent on as an empty Query (the statement
  // is shared on the server): its EmptyQueryResponse becomes CommandComplete "DEALLOCATE".
  deallocate,
  // The same sent through the extended protocol (an unnamed statement of DEALLOCATE, as psycopg
  // does), made an empty statement: its Execute's EmptyQueryResponse becomes that answer.
  execute_deallocate,
};

// One request whose answer is owed. For a Parse: the server statement it prepares and, for a
// client's, the client's name and text, so that a Parse that fails (or is skipped) is undone
// in both records. For a Bind or a Describe of one of pgvigil's statements: its name.
struct OwedAnswer {
  Owed owed;
  std::string statement = {};
  std::string client_name = {};
  StatementRef text = {};
};

class ResponseQueue {
 public:
  // A request has been planned for the server (or answered by pgvigil), in stream order.
  // Returns false when nothing will answer it: an earlier request failed and the server skips
  // everything up to the Sync (the caller undoes what the request would have done).
  bool expect(OwedAnswer answer);

  // What the relay does with one server message.
  enum class Disposition : std::uint8_t {
    pass,     // on to the client
    swallow,  // an answer to pgvigil's own request (or one it replaces with a made one)
    desync,   // not an answer the queue expects: the connection's state is unknown
  };
  // A server message of `type` arrived (its header is enough). Before it, made(std::string_view)
  // is called for every answer pgvigil makes whose turn has come. The records learn which
  // Parses did not take effect. The made answers due after it come with the next call, or with
  // take_made() at the end of what the server sent.
  template <typename Made>
  Disposition on_server_message(char type, ServerStatements& server, ClientStatements& client,
                                Made&& made);
  // The made answers whose turn has come with nothing owed by the server before them (the
  // client may be waiting for them with no server message to come, after a Flush).
  template <typename Made>
  void take_made(Made&& made);
  bool made_answer_due() const { return !none_owed() && is_made(front().owed); }

  bool empty() const { return none_owed() && !skipping_; }
  // The request whose answer comes next; nullptr when none is owed.
  const OwedAnswer* head() const { return none_owed() ? nullptr : &front(); }
  // Clears everything, as when the server connection goes back between transactions.
  void clear() {
    owed_.clear();
    next_ = 0;
    skipping_ = false;
    after_parameter_description_ = false;
  }

 private:
  static bool is_made(Owed owed) {
    return owed == Owed::made_parse_complete || owed == Owed::made_close_complete;
  }
  // The requests an ErrorResponse answers for good, after which the server skips to the Sync.
  // (A simple Query, a function call and a Sync answer an error with ReadyForQuery after it.)
  static bool ends_with_error(Owed owed) {
    return owed != Owed::query && owed != Owed::function_call && owed != Owed::sync &&
           owed != Owed::deallocate;
  }
  // A Parse that did not prepare what the records say it did.
  static void undo(const OwedAnswer& answer, ServerStatements& server, ClientStatements& client);
  // The server answered an extended request with an error: it skips up to the next Sync.
  void skip_to_sync(ServerStatements& server, ClientStatements& client);
  bool terminal(Owed owed, char type);

  // The owed answers are owed_[next_..]: a vector read from the front and emptied once all are
  // answered keeps its room, so a session's requests cost no allocation once it has warmed up
  // (a deque allocates and frees a block every few requests).
  bool none_owed() const { return next_ == owed_.size(); }
  OwedAnswer& front() { return owed_[next_]; }
  const OwedAnswer& front() const { return owed_[next_]; }
  void pop_front() {
    if (++next_ == owed_.size()) {
      owed_.clear();
      next_ = 0;
    }
  }

  static constexpr std::size_t kCompactAfter = 64;

  std::vector<OwedAnswer> owed_;
  std::size_t next_ = 0;  // the first answer still owed
  bool skipping_ = false;  // an error was answered and its Sync is not planned yet
  bool after_parameter_description_ = false;  // a describe_statement has had its 't'
};

namespace made_answers {
inline constexpr char kParseComplete[] = {'1', 0, 0, 0, 4};
inline constexpr char kCloseComplete[] = {'3', 0, 0, 0, 4};
inline constexpr char kDeallocateComplete[] = {'C', 0, 0, 0, 15, 'D', 'E', 'A', 'L', 'L',
                                               'O', 'C', 'A', 'T', 'E', 0};
}  // namespace made_answers

template <typename Made>
void ResponseQueue::take_made(Made&& made) {
  while (made_answer_due()) {
    if (front().owed == Owed::made_parse_complete) {
      made(std::string_view(made_answers::kParseComplete, sizeof made_answers::kParseComplete));
    } else {
      made(std::string_view(made_answers::kCloseComplete, sizeof made_answers::kCloseComplete));
    }
    pop_front();
  }
}

template <typename Made>
ResponseQueue::Disposition ResponseQueue::on_server_message(char type, ServerStatements& server,
                                                            ClientStatements& client,
                                                            Made&& made) {
  // Messages that may come at any time belong to no request.
  if (type == 'N' || type == 'S' || type == 'A') return Disposition::pass;
  take_made(made);
  if (none_owed()) {
    // An error on its own is a FATAL before a close; anything else is out of order.
    return type == 'E' ? Disposition::pass : Disposition::desync;
  }
  OwedAnswer& head = front();
  const bool own = head.owed == Owed::own_parse || head.owed == Owed::own_close;
  if (type == 'E' && ends_with_error(head.owed)) {
    // The failed request's answer ends here; the error goes to the client even for one of
    // pgvigil's own (its Parse of a client's statement failed: the client's request fails).
    undo(head, server, client);
    pop_front();
    after_parameter_description_ = false;
    skip_to_sync(server, client);
    return Disposition::pass;
  }
  if ((head.owed == Owed::deallocate || head.owed == Owed::execute_deallocate) && type == 'I') {
    made(std::string_view(made_answers::kDeallocateComplete,
                          sizeof made_answers::kDeallocateComplete));
    if (head.owed == Owed::execute_deallocate) pop_front();
    return Disposition::swallow;
  }
  if (!terminal(head.owed, type)) return own ? Disposition::desync : Disposition::pass;
  pop_front();
  return own ? Disposition::swallow : Disposition::pass;
}

}  // namespace pgvigil::proxy::relay
