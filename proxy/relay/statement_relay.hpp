#pragma once
// Named prepared statements in transaction pooling, where each transaction of a client may run
// on another server connection. The relay keeps a client's statements under names of pgvigil's
// own on every connection they have run on (ServerStatements, shared by every client of that
// connection) and rewrites the client's extended-protocol messages to them:
//   Parse "s"          the text is prepared under pgvigil's name, or, when the connection has
//                      it already, not sent at all (ParseComplete is made at its turn);
//   Bind / Describe    name the connection's statement, prepared there first when it lacks it
//                      (the server's ParseComplete to that is swallowed);
//   Close "s"          answered by pgvigil: other clients may share the server's statement;
//   DEALLOCATE s       (SQL, a whole simple Query, or the unnamed statement of an extended
//                      batch) likewise; DEALLOCATE ALL and DISCARD ALL clear the client's
//                      statements and go on to the server, which closes all of the
//                      connection's (its record is cleared with them). Any other SQL that
//                      mentions them (several statements in one Query) clears the connection's
//                      record too: what it closed is not known, and statements prepared again
//                      under new names are always safe.
// Each connection keeps at most `limit` statements; the least recently used is closed first.
// The unnamed statement, portals and everything else pass untouched. Pure: no I/O.

#include <cstddef>
#include <span>
#include <string>
#include <string_view>

#include "proxy/relay/deallocate_command.hpp"
#include "proxy/relay/forward_plan.hpp"
#include "proxy/relay/message_scanner.hpp"
#include "proxy/relay/prepared_statements.hpp"
#include "proxy/relay/response_queue.hpp"

namespace pgvigil::proxy::relay {

class StatementRelay {
 public:
  // texts: the route's shared statement texts, which outlive every session of the route.
  StatementRelay(StatementTexts& texts, std::size_t limit) : texts_(&texts), limit_(limit) {}
  // The session moved to another shard of its database: new statements are interned in that
  // route's texts (on that worker). Those already held stay valid: a text is immutable.
  void rebind(StatementTexts& texts) { texts_ = &texts; }

  // One client message, in order: whole for Parse, Bind, Describe, Close and Query (as the
  // RequestForwarder shows them), by header for the others. Returns false for a malformed one.
  bool on_client_message(const MessageHeader& header, std::span<const char> whole, Edit& edit,
                         ServerStatements& server);

  // One server message, by header: see ResponseQueue::on_server_message.
  template <typename Made>
  ResponseQueue::Disposition on_server_message(char type, ServerStatements& server, Made&& made) {
    return queue_.on_server_message(type, server, client_, made);
  }
  // An ErrorResponse or a CommandComplete arrived (before on_server_message for it).
  void on_server_error(std::string_view sqlstate, ServerStatements& server);
  void on_command_complete(std::string_view tag, ServerStatements& server);
  template <typename Made>
  void take_made(Made&& made) {
    queue_.take_made(made);
  }
  bool made_answer_due() const { return queue_.made_answer_due(); }
  // Every request of this lease has been answered (or skipped after an error).
  bool answered() const { return queue_.empty(); }
  // The server connection went back: a new lease starts with nothing owed.
  void lease_ended() { queue_.clear(); }
  // The client holds named statements: the relay must stay with the session.
  bool holds_statements() const { return client_.size() > 0; }

 private:
  bool on_parse(std::span<const char> body, Edit& edit, ServerStatements& server);
  bool on_bind(std::span<const char> body, Edit& edit, ServerStatements& server);
  bool on_describe(std::span<const char> body, Edit& edit, ServerStatements& server);
  bool on_close(std::span<const char> body, Edit& edit);
  bool on_query(std::span<const char> body, Edit& edit, ServerStatements& server);
  void on_execute(const MessageHeader& header);
  // What a DEALLOCATE or DISCARD in `sql` does to the records; true when it is a DEALLOCATE of
  // one of the client's statements, which the caller turns into an empty statement.
  bool forget_deallocated(std::string_view sql, ServerStatements& server);
  // The name of the connection's statement for `text`, prepared there (a Parse inserted before
  // the message being edited) when it lacks it.
  std::string ensure(const StatementRef& text, Edit& edit,
                                        ServerStatements& server);
  // Closes the connection's retired statements, before the message being edited.
  void close_retired(Edit& edit, ServerStatements& server);
  // A new server statement for `text`, room made for it first within the limit.
  ServerStatements::Entry& add_server_statement(const StatementRef& text, Edit& edit,
                                                ServerStatements& server);

  StatementTexts* texts_;
  std::size_t limit_;
  ClientStatements client_;
  ResponseQueue queue_;
  std::string scratch_;  // a message being rewritten
  // The unnamed statement, and the unnamed portal bound from it, stand for a client's
  // DEALLOCATE of one of its statements (answered as such at its Execute).
  bool unnamed_statement_deallocates_ = false;
  bool unnamed_portal_deallocates_ = false;
};

}  // namespace pgvigil::proxy::relay
