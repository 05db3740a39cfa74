#include "proxy/relay/statement_relay.hpp"

#include <algorithm>
#include <cctype>

#include "proxy/wire/extended_query.hpp"

namespace pgvigil::proxy::relay {
namespace {

constexpr std::size_t kHeaderBytes = 5;  // type and length

std::span<const char> body_of(std::span<const char> whole) {
  return whole.size() < kHeaderBytes ? std::span<const char>() : whole.subspan(kHeaderBytes);
}

// The next SQL word of `text` from `at` (letters, digits, _ and $), or a quoted identifier.
// Sets `quoted` when it was one. Empty when there is none.
std::string next_word(std::string_view text, std::size_t& at, bool& quoted) {
  while (at < text.size() && std::isspace(static_cast<unsigned char>(text[at]))) ++at;
  quoted = false;
  if (at < text.size() && text[at] == '"') {
    const auto close = text.find('"', at + 1);
    // A doubled quote inside a name is left to the server: such a name is not pgvigil's.
    if (close == std::string_view::npos || (close + 1 < text.size() && text[close + 1] == '"')) {
      at = text.size();
      return {};
    }
    quoted = true;
    std::string word(text.substr(at + 1, close - at - 1));
    at = close + 1;
    return word;
  }
  std::string word;
  while (at < text.size()) {
    const auto c = static_cast<unsigned char>(text[at]);
    if (!std::isalnum(c) && c != '_' && c != '$') break;
    word.push_back(static_cast<char>(std::tolower(c)));
    ++at;
  }
  return word;
}

// Only blanks and semicolons are left.
bool rest_is_empty(std::string_view text, std::size_t at) {
  return std::all_of(text.begin() + static_cast<std::ptrdiff_t>(at), text.end(), [](char c) {
    return c == ';' || std::isspace(static_cast<unsigned char>(c));
  });
}

}  // namespace

DeallocateCommand deallocate_command(std::string_view query) {
  std::size_t at = 0;
  bool quoted = false;
  const auto first = next_word(query, at, quoted);
  if (quoted) return {};
  if (first == "discard") {
    const auto what = next_word(query, at, quoted);
    if (!quoted && what == "all" && rest_is_empty(query, at)) {
      return {DeallocateCommand::Kind::all, {}};
    }
    return {};
  }
  if (first != "deallocate") return {};
  auto name = next_word(query, at, quoted);
  if (!quoted && name == "prepare") name = next_word(query, at, quoted);
  if (name.empty() || !rest_is_empty(query, at)) return {};
  if (!quoted && name == "all") return {DeallocateCommand::Kind::all, {}};
  return {DeallocateCommand::Kind::one, std::move(name)};
}

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
      queue_.expect({Owed::execute});
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
  if (parse->statement.empty()) {
    queue_.expect({Owed::parse});
    return true;
  }
  auto text = texts_.intern(parse->query, parse->parameter_types);
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
  const StatementRef* text = bind->statement.empty() ? nullptr : client_.find(bind->statement);
  // The unnamed statement, or a name the client never prepared: the server answers as it would
  // (26000 for the latter, in the client's own words).
  if (text) {
    const auto name = ensure(*text, edit, server);
    scratch_.clear();
    wire::append_bind(scratch_, bind->portal, name, bind->rest);
    edit.replace(scratch_);
  }
  queue_.expect({Owed::bind});
  return true;
}

bool StatementRelay::on_describe(std::span<const char> body, Edit& edit,
                                 ServerStatements& server) {
  const auto target = wire::parse_target(body);
  if (!target) return false;
  if (target->kind != 'S') {
    queue_.expect({Owed::describe_portal});
    return true;
  }
  const StatementRef* text = target->name.empty() ? nullptr : client_.find(target->name);
  if (text) {
    const auto name = ensure(*text, edit, server);
    scratch_.clear();
    wire::append_describe(scratch_, 'S', name);
    edit.replace(scratch_);
  }
  queue_.expect({Owed::describe_statement});
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
  // A Query too large to be shown whole is no DEALLOCATE.
  const std::string_view text(body.data(), body.empty() ? 0 : body.size() - 1);
  const auto command = body.empty() ? DeallocateCommand{} : deallocate_command(text);
  switch (command.kind) {
    case DeallocateCommand::Kind::none:
      break;
    case DeallocateCommand::Kind::all:
      // The server closes every statement of the connection, other clients' too: its record
      // goes with them, and they are prepared again where needed.
      client_.clear();
      server.clear();
      break;
    case DeallocateCommand::Kind::one:
      if (!client_.find(command.name)) break;  // not the client's: the server's to answer
      client_.remove(command.name);
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

std::string StatementRelay::ensure(const StatementRef& text, Edit& edit,
                                   ServerStatements& server) {
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
