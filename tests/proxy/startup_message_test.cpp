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

TEST(StartupMessage, ManyParametersAreKeptAndADuplicateFoundAmongThem) {
  // More names than the parser keeps on its stack (16): the rest go to the heap, checked alike.
  std::string body = "user\0bob\0"s;
  for (int i = 0; i < 40; ++i) body += "p" + std::to_string(i) + '\0' + "v" + '\0';
  const auto many = parse(body + '\0');
  ASSERT_TRUE(many) << many.error();
  EXPECT_EQ(many->others.size(), 40u);
  EXPECT_EQ(many->others[39].name, "p39");
  for (const char* again : {"p0", "p20", "p39"}) {
    const auto duplicate = parse(body + again + '\0' + "w" + '\0' + '\0');
    ASSERT_FALSE(duplicate) << again;
    EXPECT_NE(duplicate.error().find("duplicate startup parameter \"" + std::string(again)),
              std::string::npos)
        << duplicate.error();
  }
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
