#include "proxy/wire/startup_message.hpp"

#include <algorithm>
#include <boost/container/small_vector.hpp>
#include <string_view>

namespace pgvigil::proxy::wire {
namespace {

using Result = ParseResult<StartupMessage>;

// Every name seen so far, to refuse duplicates: PostgreSQL silently keeps the last one, which
// would let a client hide a second "user" from a log that printed the first.
// Kept on the stack for the usual few names (a client sends 3 to 8); a long list goes to the heap.
using SeenNames = boost::container::small_vector<std::string_view, 16>;

bool seen_before(const SeenNames& names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

}  // namespace

ParseResult<StartupMessage> parse_startup_message(std::span<const char> payload,
                                                  std::uint32_t startup_code) {
  StartupMessage message;
  message.minor_version = static_cast<std::uint16_t>(startup_code & 0xffff);
  const std::string_view body(payload.data(), payload.size());
  SeenNames names;
  bool database_given = false;

  std::size_t pos = 0;
  while (true) {
    if (pos >= body.size()) return Result::fail("startup packet lacks its final terminator");
    if (body[pos] == '\0') break;  // the empty name that ends the list

    const std::size_t name_end = body.find('\0', pos);
    if (name_end == std::string_view::npos)
      return Result::fail("unterminated parameter name in startup packet");
    const std::string_view name = body.substr(pos, name_end - pos);
    pos = name_end + 1;
    const std::size_t value_end = body.find('\0', pos);
    if (value_end == std::string_view::npos) {
      return Result::fail("unterminated value for startup parameter \"" + std::string(name) + "\"");
    }
    const std::string_view value = body.substr(pos, value_end - pos);
    pos = value_end + 1;

    if (seen_before(names, name)) {
      return Result::fail("duplicate startup parameter \"" + std::string(name) + "\"");
    }
    names.push_back(name);

    if (name == "user") {
      message.user = value;
    } else if (name == "database") {
      message.database = value;
      database_given = true;
    } else if (name == "options") {
      message.options = value;
    } else if (name == "application_name") {
      message.application_name = value;
    } else if (name == "replication") {
      message.replication = value;
    } else {
      message.others.push_back({std::string(name), std::string(value)});
    }
  }
  if (pos + 1 != body.size())
    return Result::fail("unexpected bytes after the startup packet terminator");
  if (message.user.empty())
    return Result::fail("no PostgreSQL user name specified in startup packet");
  if (!database_given || message.database.empty()) message.database = message.user;
  return Result::ok(std::move(message));
}

}  // namespace pgvigil::proxy::wire
