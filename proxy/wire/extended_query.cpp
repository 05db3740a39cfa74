#include "proxy/wire/extended_query.hpp"

#include "proxy/wire/byte_io.hpp"
#include "proxy/wire/message_writer.hpp"

namespace pgvigil::proxy::wire {
namespace {

// The NUL-terminated string at `at`, and the offset after its terminator; nullopt without one.
std::optional<std::string_view> cstring_at(std::string_view body, std::size_t& at) {
  const auto end = body.find('\0', at);
  if (end == std::string_view::npos) return std::nullopt;
  const auto value = body.substr(at, end - at);
  at = end + 1;
  return value;
}

}  // namespace

std::optional<ParseView> parse_parse(std::span<const char> payload) {
  const std::string_view body(payload.data(), payload.size());
  std::size_t at = 0;
  const auto statement = cstring_at(body, at);
  if (!statement) return std::nullopt;
  const auto query = cstring_at(body, at);
  if (!query) return std::nullopt;
  if (body.size() - at < 2) return std::nullopt;
  const auto count = read_uint16(payload.subspan(at));
  // Exactly the count's OIDs and nothing after them.
  if (body.size() - at != 2 + std::size_t{count} * 4) return std::nullopt;
  return ParseView{*statement, *query, body.substr(at)};
}

std::optional<BindView> parse_bind(std::span<const char> payload) {
  const std::string_view body(payload.data(), payload.size());
  std::size_t at = 0;
  const auto portal = cstring_at(body, at);
  if (!portal) return std::nullopt;
  const auto statement = cstring_at(body, at);
  if (!statement) return std::nullopt;
  return BindView{*portal, *statement, body.substr(at)};
}

std::optional<TargetView> parse_target(std::span<const char> payload) {
  const std::string_view body(payload.data(), payload.size());
  if (body.size() < 2 || (body[0] != 'S' && body[0] != 'P')) return std::nullopt;
  // The name fills the rest, its terminator the last byte.
  if (body.find('\0', 1) != body.size() - 1) return std::nullopt;
  return TargetView{body[0], body.substr(1, body.size() - 2)};
}

void append_parse(std::string& out, std::string_view statement, std::string_view query,
                  std::string_view parameter_types) {
  MessageWriter message(out, 'P');
  message.cstring(statement);
  message.cstring(query);
  message.bytes(parameter_types);
}

void append_bind(std::string& out, std::string_view portal, std::string_view statement,
                 std::string_view rest) {
  MessageWriter message(out, 'B');
  message.cstring(portal);
  message.cstring(statement);
  message.bytes(rest);
}

void append_describe(std::string& out, char kind, std::string_view name) {
  MessageWriter message(out, 'D');
  message.byte(kind);
  message.cstring(name);
}

void append_close(std::string& out, char kind, std::string_view name) {
  MessageWriter message(out, 'C');
  message.byte(kind);
  message.cstring(name);
}

void append_parse_complete(std::string& out) { MessageWriter message(out, '1'); }

void append_close_complete(std::string& out) { MessageWriter message(out, '3'); }

}  // namespace pgvigil::proxy::wire
