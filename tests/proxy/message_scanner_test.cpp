// The relay's message scanner (proxy/relay/message_scanner.hpp): headers found in any cut of the
// stream, with where each message starts and ends, and the lengths it refuses.
#include "proxy/relay/message_scanner.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/proxy/wire_bytes.hpp"

namespace pgvigil::proxy::relay {
namespace {

using wire::test::be32;
using wire::test::message;

std::vector<MessageHeader> scan_all(MessageScanner& scanner, std::string_view bytes) {
  std::vector<MessageHeader> headers;
  EXPECT_EQ(scanner.scan(bytes,
                         [&](const MessageHeader& h) {
                           headers.push_back(h);
                           return true;
                         }),
            MessageScanner::Verdict::ok);
  return headers;
}

TEST(MessageScanner, ReportsEachMessageWithItsFirstBodyByteStartAndEnd) {
  MessageScanner scanner(1 << 20);
  const std::string bytes = message('Z', "I") + message('S', "") + message('D', "row");
  const auto headers = scan_all(scanner, bytes);
  ASSERT_EQ(headers.size(), 3u);
  EXPECT_EQ(headers[0].type, 'Z');
  EXPECT_EQ(headers[0].first_body_byte, 'I');
  EXPECT_EQ(headers[0].start, 0u);
  EXPECT_EQ(headers[0].end, 6u);
  EXPECT_EQ(headers[1].type, 'S');
  EXPECT_EQ(headers[1].first_body_byte, -1);
  EXPECT_EQ(headers[1].body_length, 0u);
  EXPECT_EQ(headers[1].start, 6u);
  EXPECT_EQ(headers[1].end, 11u);
  EXPECT_EQ(headers[2].start, 11u);
  EXPECT_EQ(headers[2].end, bytes.size());
  EXPECT_FALSE(headers[2].begun_earlier);
  EXPECT_TRUE(scanner.at_boundary());
}

TEST(MessageScanner, AMessageCutAnywhereIsReportedOnceWhenItsHeaderIsKnown) {
  const std::string bytes = message('D', "some row bytes");
  for (std::size_t cut = 1; cut < bytes.size(); ++cut) {
    SCOPED_TRACE(cut);
    MessageScanner scanner(1 << 20);
    auto first = scan_all(scanner, std::string_view(bytes).substr(0, cut));
    auto second = scan_all(scanner, std::string_view(bytes).substr(cut));
    ASSERT_EQ(first.size() + second.size(), 1u);
    const auto& header = first.empty() ? second[0] : first[0];
    EXPECT_EQ(header.first_body_byte, 's');
    EXPECT_EQ(header.begun_earlier, first.empty());
    if (first.empty()) {
      // Offsets are the second span's: the message ends where that span's part of it ends.
      EXPECT_EQ(header.end, bytes.size() - cut);
      EXPECT_EQ(scanner.at_boundary(), true);
    } else {
      EXPECT_EQ(header.end, bytes.size()) << "beyond the first span: it goes on";
      EXPECT_FALSE(first.empty() && scanner.in_header());
    }
    EXPECT_TRUE(scanner.at_boundary());
  }
}

TEST(MessageScanner, AnIncompleteHeaderIsNotReportedAndSaysWhereItBegan) {
  MessageScanner scanner(1 << 20);
  const std::string bytes = message('S', "") + message('Q', "x").substr(0, 3);
  EXPECT_EQ(scan_all(scanner, bytes).size(), 1u);
  EXPECT_TRUE(scanner.in_header());
  EXPECT_FALSE(scanner.header_begun_earlier());
  EXPECT_EQ(scanner.header_start(), 5u);
  EXPECT_FALSE(scanner.at_boundary());
  EXPECT_TRUE(scan_all(scanner, std::string(1, '\0')).empty());
  EXPECT_TRUE(scanner.header_begun_earlier());
}

TEST(MessageScanner, LengthsBelowFourOrAboveTheLimitAreRefused) {
  MessageScanner scanner(100);
  EXPECT_EQ(scanner.scan(std::string_view("Q\0\0\0\x03", 5), [](auto&) { return true; }),
            MessageScanner::Verdict::bad_length);
  MessageScanner limited(100);
  EXPECT_EQ(limited.scan(std::string(1, 'd') + be32(105), [](auto&) { return true; }),
            MessageScanner::Verdict::bad_length);
  MessageScanner exact(100);
  EXPECT_EQ(exact.scan(std::string(1, 'd') + be32(104), [](auto&) { return true; }),
            MessageScanner::Verdict::ok);
}

TEST(MessageScanner, AVisitorCanStopTheScan) {
  MessageScanner scanner(1 << 20);
  int visited = 0;
  const std::string bytes = message('S', "") + message('S', "");
  scanner.scan(bytes, [&](const MessageHeader&) { return ++visited < 1; });
  EXPECT_EQ(visited, 1);
}

}  // namespace
}  // namespace pgvigil::proxy::relay
