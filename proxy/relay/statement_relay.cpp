#include "proxy/relay/statement_relay.hpp"

#include "proxy/relay/deallocate_command.hpp"
#include "proxy/relay/message_forwarder.hpp"
#include "proxy/wire/extended_query.hpp"

namespace pgvigil::proxy::relay {

bool StatementRelay::on_client_message(const MessageHeader& header, std::span<const char> whole,
                                       Edit& edit, ServerStatements& server) {
  const auto body = body_of(whole);
  switch (header.type) {
    case 'P':
      return on_parse(body, edit, server);
    case 'B':
      return on_bind(body, edit, server);
    case 'D':
      return on_describe(body, edit, server);
    case 'C':
      return on_close(body, edit);
    case 'Q':
      return on_query(body, edit, server);
    case 'E':
      on_execute(header);
      return true;
    case 'S':
      queue_.expect({Owed::sync});
      return true;
    case 'F':
      queue_.expect({Owed::function_call});
      return true;
    default:  // H (Flush), d c f (COPY data), X: nothing of their own is answered
      return true;
  }
}

bool StatementRelay::on_parse(std::span<const char> body, Edit& edit, ServerStatements& server) {
  const auto parse = wire::parse_parse(body);
  if (!parse) return false;
  close_retired(edit, server);
  if (parse->statement.empty()) {
    unnamed_statement_deallocates_ = forget_deallocated(parse->query, server);
    if (unnamed_statement_deallocates_) {
      // The server's statement may serve other clients: an empty statement stands in for it.
      scratch_.clear();
      wire::append_parse(scratch_, "", "", std::string_view("\0\0", 2));
      edit.replace(scratch_);
    }
    queue_.expect({Owed::parse});
    return true;
  }
  auto text = texts_->intern(parse->query, parse->parameter_types);
  std::string client_name(parse->statement);
  // A name prepared again replaces the old statement (a direct server would refuse it with
  // 42P05; no driver relies on that).
  client_.add(client_name, text);
  if (server.use(*text)) {
    // The connection has it already: the server is spared the Parse, its answer is made.
    edit.drop();
    if (!queue_.expect({Owed::made_parse_complete, {}, std::move(client_name), text})) {
      client_.remove_if(parse->statement, text);
    }
    return true;
  }
  const auto& entry = add_server_statement(text, edit, server);
  scratch_.clear();
  wire::append_parse(scratch_, entry.name, parse->query, parse->parameter_types);
  edit.replace(scratch_);
  if (!queue_.expect({Owed::parse, entry.name, std::move(client_name), text})) {
    server.forget(entry.name);
    client_.remove_if(parse->statement, text);
  }
  return true;
}

bool StatementRelay::on_bind(std::span<const char> body, Edit& edit, ServerStatements& server) {
  const auto bind = wire::parse_bind(body);
  if (!bind) return false;
  if (bind->portal.empty()) {
    unnamed_portal_deallocates_ = bind->statement.empty() && unnamed_statement_deallocates_;
  }
  const StatementRef* text = bind->statement.empty() ? nullptr : client_.find(bind->statement);
  // The unnamed statement, or a name the client never prepared: the server answers as it would
  // (26000 for the latter, in the client's own words).
  std::string name;
  if (text) {
    close_retired(edit, server);
    name = ensure(*text, edit, server);
    scratch_.clear();
    wire::append_bind(scratch_, bind->portal, name, bind->rest);
    edit.replace(scratch_);
    // Run, it closes the connection's statements (a prepared DEALLOCATE ALL or DISCARD ALL):
    // what is left is not known, so everything is prepared again where needed.
    if ((*text)->closes_statements) server.clear();
  }
  queue_.expect({Owed::bind, std::move(name)});
  return true;
}

bool StatementRelay::on_describe(std::span<const char> body, Edit& edit, ServerStatements& server) {
  const auto target = wire::parse_target(body);
  if (!target) return false;
  if (target->kind != 'S') {
    queue_.expect({Owed::describe_portal});
    return true;
  }
  const StatementRef* text = target->name.empty() ? nullptr : client_.find(target->name);
  std::string name;
  if (text) {
    close_retired(edit, server);
    name = ensure(*text, edit, server);
    scratch_.clear();
    wire::append_describe(scratch_, 'S', name);
    edit.replace(scratch_);
  }
  queue_.expect({Owed::describe_statement, std::move(name)});
  return true;
}

bool StatementRelay::on_close(std::span<const char> body, Edit& edit) {
  const auto target = wire::parse_target(body);
  if (!target) return false;
  if (target->kind != 'S' || target->name.empty()) {
    queue_.expect({Owed::close});
    return true;
  }
  // The server's statement may serve other clients (and the next Parse of this one): it stays,
  // within the connection's limit. Closing a name that does not exist succeeds, as on a server.
  client_.remove(target->name);
  edit.drop();
  queue_.expect({Owed::made_close_complete});
  return true;
}

bool StatementRelay::on_query(std::span<const char> body, Edit& edit, ServerStatements& server) {
  // A Query too large to be shown whole is no DEALLOCATE (nor one that mentions it).
  const std::string_view text(body.data(), body.empty() ? 0 : body.size() - 1);
  if (forget_deallocated(text, server)) {
    // An empty Query keeps the server's ReadyForQuery (and its transaction status) in place.
    scratch_.clear();
    scratch_.append({'Q', 0, 0, 0, 5, 0});
    edit.replace(scratch_);
    queue_.expect({Owed::deallocate});
    return true;
  }
  queue_.expect({Owed::query});
  return true;
}

void StatementRelay::on_execute(const MessageHeader& header) {
  // first_body_byte 0: the portal's name is empty, the unnamed portal.
  if (header.first_body_byte == 0 && unnamed_portal_deallocates_) {
    unnamed_portal_deallocates_ = false;
    queue_.expect({Owed::execute_deallocate});
    return;
  }
  queue_.expect({Owed::execute});
}

bool StatementRelay::forget_deallocated(std::string_view sql, ServerStatements& server) {
  if (!mentions_deallocate(sql)) return false;
  const auto command = deallocate_command(sql);
  switch (command.kind) {
    case DeallocateCommand::Kind::none:
      // Several statements, or one pgvigil does not read: what the server closes is unknown.
      server.clear();
      return false;
    case DeallocateCommand::Kind::all:
      // The server closes every statement of the connection, other clients' too: its record
      // goes with them, and they are prepared again where needed.
      client_.clear();
      server.clear();
      return false;
    case DeallocateCommand::Kind::one:
      if (!client_.find(command.name)) return false;  // not the client's: the server's to answer
      client_.remove(command.name);
      return true;
  }
  return false;
}

void StatementRelay::on_server_error(std::string_view sqlstate, ServerStatements& server) {
  // 0A000 to a Bind or Describe of a statement: "cached plan must not change result type" (a
  // table it reads has changed). A driver closes its statement and prepares the text again,
  // which the records would answer with the same stale statement: it goes now instead.
  // 26000 for one of pgvigil's names: the records were wrong (the server lost it in a way they
  // missed); it is prepared again next time.
  const auto* head = queue_.head();
  if (!head || head->statement.empty()) return;
  if (head->owed != Owed::bind && head->owed != Owed::describe_statement) return;
  if (sqlstate == "0A000") server.retire(head->statement);
  if (sqlstate == "26000") server.forget(head->statement);
}

void StatementRelay::on_command_complete(std::string_view tag, ServerStatements& server) {
  // However it was sent (a function, a statement pgvigil did not read), the server says so.
  if (tag == "DEALLOCATE ALL" || tag == "DISCARD ALL") server.clear();
}

void StatementRelay::close_retired(Edit& edit, ServerStatements& server) {
  if (!server.has_retired()) return;
  for (const auto& name : server.take_retired()) {
    scratch_.clear();
    wire::append_close(scratch_, 'S', name);
    edit.insert(scratch_);
    // Skipped after an error: the server never sees it, and the name is closed another time.
    if (!queue_.expect({Owed::own_close})) server.keep_for_close(name);
  }
}

std::string StatementRelay::ensure(const StatementRef& text, Edit& edit, ServerStatements& server) {
  if (const auto* entry = server.use(*text)) return entry->name;
  auto name = add_server_statement(text, edit, server).name;
  scratch_.clear();
  wire::append_parse(scratch_, name, text->query, text->parameter_types);
  edit.insert(scratch_);
  if (!queue_.expect({Owed::own_parse, name})) server.forget(name);
  return name;
}

ServerStatements::Entry& StatementRelay::add_server_statement(const StatementRef& text, Edit& edit,
                                                              ServerStatements& server) {
  while (limit_ > 0 && server.size() >= limit_) {
    const auto evicted = server.evict_oldest();
    scratch_.clear();
    wire::append_close(scratch_, 'S', evicted);
    edit.insert(scratch_);
    queue_.expect({Owed::own_close});
  }
  return server.add(text);
}

}  // namespace pgvigil::proxy::relay
