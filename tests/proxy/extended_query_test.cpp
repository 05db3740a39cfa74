// Parse, Bind, Describe and Close read and written (proxy/wire/extended_query): what the relay
// rewrites must come out byte for byte as libpq would send it, and malformed bodies are refused.
#include "proxy/wire/extended_query.hpp"

#include <gtest/gtest.h>

#include "tests/proxy/wire_bytes.hpp"

namespace pgvigil::proxy::wire {
namespace {

using namespace std::string_literals;
using test::as_span;
using test::be32;

std::string body_of(const std::string& message) { return message.substr(5); }

TEST(ExtendedQuery, ParseRoundTrips) {
  const std::string types = "\0\x02"s + be32(23) + be32(25);
  std::string message;
  append_parse(message, "s1", "SELECT $1, $2", types);
  EXPECT_EQ(message, "P"s + be32(4 + 3 + 14 + 10) + "s1\0SELECT $1, $2\0"s + types);
  const auto body = body_of(message);
  const auto view = parse_parse(as_span(body));
  ASSERT_TRUE(view);
  EXPECT_EQ(view->statement, "s1");
  EXPECT_EQ(view->query, "SELECT $1, $2");
  EXPECT_EQ(view->parameter_types, types);
}

TEST(ExtendedQuery, MalformedParseBodiesAreRefused) {
  EXPECT_FALSE(parse_parse(as_span("s1"s)));                    // no terminator
  EXPECT_FALSE(parse_parse(as_span("s1\0SELECT 1"s)));          // query unterminated
  EXPECT_FALSE(parse_parse(as_span("s1\0SELECT 1\0"s)));        // no count
  EXPECT_FALSE(parse_parse(as_span("s1\0SELECT 1\0\0\x01"s)));  // one OID promised
  EXPECT_FALSE(parse_parse(as_span("s1\0SELECT 1\0\0\0X"s)));   // trailing garbage
  EXPECT_TRUE(parse_parse(as_span("\0SELECT 1\0\0\0"s)));       // unnamed, no types
}

TEST(ExtendedQuery, BindRoundTripsWithItsRestUntouched) {
  const std::string rest = "\0\0\0\x01"s + be32(2) + "42" + "\0\0"s;
  std::string message;
  append_bind(message, "", "pgv_7", rest);
  const auto body = body_of(message);
  const auto view = parse_bind(as_span(body));
  ASSERT_TRUE(view);
  EXPECT_EQ(view->portal, "");
  EXPECT_EQ(view->statement, "pgv_7");
  EXPECT_EQ(view->rest, rest);
  EXPECT_FALSE(parse_bind(as_span("portal\0stmt"s)));
}

TEST(ExtendedQuery, DescribeAndCloseRoundTrip) {
  std::string describe;
  append_describe(describe, 'S', "s1");
  EXPECT_EQ(describe, "D"s + be32(8) + "Ss1\0"s);
  const auto body = body_of(describe);
  const auto target = parse_target(as_span(body));
  ASSERT_TRUE(target);
  EXPECT_EQ(target->kind, 'S');
  EXPECT_EQ(target->name, "s1");
  std::string close;
  append_close(close, 'P', "");
  EXPECT_EQ(close, "C"s + be32(6) + "P\0"s);
  EXPECT_FALSE(parse_target(as_span("Xs1\0"s)));   // neither statement nor portal
  EXPECT_FALSE(parse_target(as_span("Ss1"s)));     // unterminated
  EXPECT_FALSE(parse_target(as_span("Ss1\0x"s)));  // trailing bytes
}

TEST(ExtendedQuery, CompletionMessages) {
  std::string out;
  append_parse_complete(out);
  append_close_complete(out);
  EXPECT_EQ(out, "1"s + be32(4) + "3"s + be32(4));
}

}  // namespace
}  // namespace pgvigil::proxy::wire
