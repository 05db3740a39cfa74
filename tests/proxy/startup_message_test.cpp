// StartupMessage body parsing: accepted shapes and every refusal.

#include "proxy/wire/startup_message.hpp"

#include <gtest/gtest.h>

#include "proxy/wire/protocol.hpp"
#include "tests/proxy/wire_bytes.hpp"

namespace pgvigil::proxy::wire {
namespace {

using namespace std::string_literals;

ParseResult<StartupMessage> parse(const std::string& body,
                                  std::uint32_t code = kProtocolVersion30) {
  return parse_startup_message(test::as_span(body), code);
}

TEST(StartupMessage, ParsesKnownAndOtherKeys) {
  const auto result = parse(
      "user\0alice\0database\0sales\0options\0-c geqo=off\0"
      "application_name\0psql\0client_encoding\0UTF8\0_pq_.x\0y\0\0"s);
  ASSERT_TRUE(result) << result.error();
  EXPECT_EQ(result->user, "alice");
  EXPECT_EQ(result->database, "sales");
  EXPECT_EQ(result->options, "-c geqo=off");
  EXPECT_EQ(result->application_name, "psql");
  EXPECT_EQ(result->replication, "");
  ASSERT_EQ(result->others.size(), 2u);
  EXPECT_EQ(result->others[0].name, "client_encoding");
  EXPECT_EQ(result->others[0].value, "UTF8");
  EXPECT_EQ(result->others[1].name, "_pq_.x");
  EXPECT_EQ(result->minor_version, 0);
}

TEST(StartupMessage, DatabaseDefaultsToUser) {
  const auto result = parse("user\0bob\0\0"s);
  ASSERT_TRUE(result) << result.error();
  EXPECT_EQ(result->database, "bob");
}

TEST(StartupMessage, KeepsReplicationAndMinorVersion) {
  const auto result = parse("replication\0database\0user\0r\0\0"s, (3 << 16) | 2);
  ASSERT_TRUE(result) << result.error();
  EXPECT_EQ(result->replication, "database");
  EXPECT_EQ(result->minor_version, 2);
}

TEST(StartupMessage, RefusesMalformedBodies) {
  struct Case {
    std::string body;
    std::string error_part;
  };
  const Case cases[] = {
      {"", "final terminator"},
      {"user\0bob\0"s, "final terminator"},
      {"user\0bob"s, "unterminated value"},
      {"user"s, "unterminated parameter name"},
      {"user\0bob\0database"s, "unterminated parameter name"},
      {"user\0bob\0user\0eve\0\0"s, "duplicate startup parameter \"user\""},
      {"user\0bob\0x\0\1\0x\0\2\0\0"s, "duplicate startup parameter \"x\""},
      {"database\0db\0\0"s, "no PostgreSQL user name"},
      {"user\0\0\0"s, "no PostgreSQL user name"},
      {"\0"s, "no PostgreSQL user name"},
      {"user\0bob\0\0x"s, "after the startup packet terminator"},
      {"user\0bob\0\0\0"s, "after the startup packet terminator"},
  };
  for (const Case& c : cases) {
    const auto result = parse(c.body);
    ASSERT_FALSE(result) << "accepted: " << testing::PrintToString(c.body);
    EXPECT_NE(result.error().find(c.error_part), std::string::npos)
        << testing::PrintToString(c.body) << " gave: " << result.error();
  }
}

}  // namespace
}  // namespace pgvigil::proxy::wire
