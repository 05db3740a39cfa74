// The relay's message scanner (proxy/relay/message_scanner.hpp): headers found in any cut of the
// stream, with where each message starts and ends, and the lengths it refuses.
#include "proxy/relay/message_scanner.hpp"

#include <gtest/gtest.h>

#include <random>
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

TEST(MessageScanner, ABadLengthIsRefusedWithMoreBytesAfterIt) {
  for (const std::uint32_t length : {0u, 3u, 105u, 0xffffffffu}) {
    SCOPED_TRACE(length);
    MessageScanner scanner(100);
    const std::string bytes = message('S', "") + std::string(1, 'd') + be32(length) + "more bytes";
    int visited = 0;
    EXPECT_EQ(scanner.scan(bytes, [&](const MessageHeader&) { return ++visited > 0; }),
              MessageScanner::Verdict::bad_length);
    EXPECT_EQ(visited, 1);
  }
}

// The scanner as it was written first, a byte at a time: the fast path for a header that lies
// whole in the span must find exactly what it finds.
class ByteByByteScanner {
 public:
  explicit ByteByByteScanner(std::uint32_t max_body_length) : max_body_length_(max_body_length) {}

  template <typename Visitor>
  MessageScanner::Verdict scan(std::span<const char> bytes, Visitor&& visit) {
    std::size_t position = 0;
    if (header_size_ > 0) {
      start_ = 0;
      begun_earlier_ = true;
    }
    while (position < bytes.size()) {
      if (body_remaining_ > 0) {
        const auto skip = std::min<std::size_t>(body_remaining_, bytes.size() - position);
        position += skip;
        body_remaining_ -= static_cast<std::uint32_t>(skip);
        continue;
      }
      if (header_size_ == 0) {
        start_ = position;
        begun_earlier_ = false;
      }
      header_[header_size_++] = bytes[position++];
      if (header_size_ < 5) continue;
      const auto* raw = reinterpret_cast<const unsigned char*>(header_);
      const std::uint32_t length = (std::uint32_t{raw[1]} << 24) | (std::uint32_t{raw[2]} << 16) |
                                   (std::uint32_t{raw[3]} << 8) | std::uint32_t{raw[4]};
      if (length < 4 || length - 4 > max_body_length_) return MessageScanner::Verdict::bad_length;
      const std::uint32_t body = length - 4;
      if (body > 0 && header_size_ == 5) continue;
      body_remaining_ = body > 0 ? body - 1 : 0;
      const MessageHeader header{header_[0],
                                 body,
                                 body > 0 ? static_cast<unsigned char>(header_[5]) : -1,
                                 start_,
                                 position + body_remaining_,
                                 begun_earlier_};
      header_size_ = 0;
      if (!visit(header)) return MessageScanner::Verdict::ok;
    }
    return MessageScanner::Verdict::ok;
  }
  bool at_boundary() const { return header_size_ == 0 && body_remaining_ == 0; }
  bool in_header() const { return header_size_ > 0; }
  std::size_t header_start() const { return start_; }
  bool header_begun_earlier() const { return begun_earlier_; }

 private:
  std::uint32_t max_body_length_;
  char header_[6] = {};
  std::size_t header_size_ = 0;
  bool begun_earlier_ = false;
  std::size_t start_ = 0;
  std::uint32_t body_remaining_ = 0;
};

bool same_header(const MessageHeader& a, const MessageHeader& b) {
  return a.type == b.type && a.body_length == b.body_length &&
         a.first_body_byte == b.first_body_byte && a.start == b.start && a.end == b.end &&
         a.begun_earlier == b.begun_earlier;
}

TEST(MessageScanner, FindsWhatAByteByByteScanFindsInAnyCutOfAnyStream) {
  std::mt19937 random(20261208);  // fixed: a failure is reproduced by running the test again
  for (int round = 0; round < 3000; ++round) {
    SCOPED_TRACE(round);
    // Messages of every size class around the header: empty bodies, one byte, longer; now and
    // then a bad length (below 4, or over the limit of 64).
    std::string stream;
    const int messages = 1 + static_cast<int>(random() % 8);
    for (int i = 0; i < messages; ++i) {
      const auto kind = random() % 20;
      if (kind == 0) {
        stream += std::string(1, 'x') + be32(static_cast<std::uint32_t>(random() % 4));
      } else if (kind == 1) {
        stream += std::string(1, 'x') + be32(69 + static_cast<std::uint32_t>(random() % 1000));
      } else {
        std::string body(random() % 3 == 0 ? 0 : random() % 70 % 65, '\0');
        for (auto& c : body) c = static_cast<char>(random());
        stream += message(static_cast<char>('A' + random() % 26), body);
      }
    }
    const bool stop_early = random() % 4 == 0;
    MessageScanner fast(64);
    ByteByByteScanner reference(64);
    std::size_t at = 0;
    int fast_visits = 0;
    int reference_visits = 0;
    while (at < stream.size()) {
      const auto cut = std::min<std::size_t>(stream.size() - at, 1 + random() % 24);
      const std::span<const char> span(stream.data() + at, cut);
      at += cut;
      std::vector<MessageHeader> found;
      std::vector<MessageHeader> expected;
      const auto verdict = fast.scan(span, [&](const MessageHeader& h) {
        found.push_back(h);
        return !stop_early || ++fast_visits < 3;
      });
      const auto reference_verdict = reference.scan(span, [&](const MessageHeader& h) {
        expected.push_back(h);
        return !stop_early || ++reference_visits < 3;
      });
      ASSERT_EQ(verdict, reference_verdict);
      ASSERT_EQ(found.size(), expected.size());
      for (std::size_t i = 0; i < found.size(); ++i) {
        ASSERT_TRUE(same_header(found[i], expected[i])) << "message " << i;
      }
      if (verdict == MessageScanner::Verdict::bad_length) break;  // not scanned again after it
      ASSERT_EQ(fast.at_boundary(), reference.at_boundary());
      ASSERT_EQ(fast.in_header(), reference.in_header());
      if (fast.in_header()) {
        ASSERT_EQ(fast.header_begun_earlier(), reference.header_begun_earlier());
        if (!fast.header_begun_earlier()) ASSERT_EQ(fast.header_start(), reference.header_start());
      }
      if (stop_early && fast_visits >= 3) break;  // the state after a stop compared, as above
    }
  }
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
