#pragma once
// The key/value body of a protocol-3 StartupMessage.

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "proxy/wire/parse_result.hpp"

namespace pgvigil::proxy::wire {

struct StartupParameter {
  std::string name;
  std::string value;
};

struct StartupMessage {
  std::uint16_t minor_version = 0;  // from the frame's code; > 0 calls for NegotiateProtocolVersion
  std::string user;
  std::string database;  // the user name when the client gave none, as PostgreSQL does
  std::string options;
  std::string application_name;
  std::string replication;  // empty unless requested; the proxy will likely refuse it
  std::vector<StartupParameter>
      others;  // every other key in wire order (client_encoding, _pq_.*, ...)
};

// Parses Frame::payload of a startup frame whose code has major version 3. Refuses a missing or
// empty user, unterminated strings, a missing final terminator, bytes after it and
// duplicate names. Keys are case-sensitive, as in PostgreSQL.
ParseResult<StartupMessage> parse_startup_message(std::span<const char> payload,
                                                  std::uint32_t startup_code);

}  // namespace pgvigil::proxy::wire
