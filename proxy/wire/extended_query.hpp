#pragma once
// The extended-query messages the relay reads and rewrites to keep a client's named prepared
// statements under names of pgvigil's own on whichever server connection it gets: Parse, Bind,
// Describe and Close from the client, ParseComplete and CloseComplete to it. Readers take a
// message's body (after type and length) and return nullopt when it is malformed; views point
// into it. Builders append one whole message.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace pgvigil::proxy::wire {

// Parse ('P'): statement name, query text, parameter type OIDs.
struct ParseView {
  std::string_view statement;  // "" is the unnamed statement
  std::string_view query;
  // The raw parameter-type part: an int16 count, then that many int32 OIDs. Kept raw: it is
  // compared and copied, never interpreted.
  std::string_view parameter_types;
};
std::optional<ParseView> parse_parse(std::span<const char> body);

// Bind ('B'): the portal and statement names, then the rest (formats, values, result formats),
// which the relay passes through untouched.
struct BindView {
  std::string_view portal;
  std::string_view statement;
  std::string_view rest;
};
std::optional<BindView> parse_bind(std::span<const char> body);

// Describe ('D') and Close ('C'): 'S' for a statement or 'P' for a portal, and its name.
struct TargetView {
  char kind;
  std::string_view name;
};
std::optional<TargetView> parse_target(std::span<const char> body);

void append_parse(std::string& out, std::string_view statement, std::string_view query,
                  std::string_view parameter_types);
void append_bind(std::string& out, std::string_view portal, std::string_view statement,
                 std::string_view rest);
void append_describe(std::string& out, char kind, std::string_view name);
void append_close(std::string& out, char kind, std::string_view name);

void append_parse_complete(std::string& out);  // '1'
void append_close_complete(std::string& out);  // '3'

}  // namespace pgvigil::proxy::wire
