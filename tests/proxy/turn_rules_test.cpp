// The relay's turn rules (proxy/relay/turn_rules.hpp): which bytes end a client's turn, seen
// from the relay scanner's state before the read, and which end the server's.
#include "proxy/relay/turn_rules.hpp"

#include <gtest/gtest.h>

#include <string>

#include "tests/proxy/wire_bytes.hpp"

namespace pgvigil::proxy::relay {
namespace {

using namespace std::string_literals;

constexpr std::uint32_t kTurnMaxBody = 1 << 20;

using wire::test::kExecute;
using wire::test::kSync;
const std::string kQuery = wire::test::query("SELECT 1");
const std::string kCopyData = wire::test::message('d', "abc");

bool claims(const std::string& bytes, MessageScanner scanner = MessageScanner(kTurnMaxBody)) {
  RequestEnded rule{scanner};
  return rule(bytes);
}

TEST(RequestEnded, ACompleteQueryOrSyncEndsTheTurn) {
  EXPECT_TRUE(claims(kQuery));
  EXPECT_TRUE(claims(kExecute + kSync));
  EXPECT_TRUE(claims(kQuery + kQuery));  // pipelined: the last one counts
}

TEST(RequestEnded, TellsItsNoticeExactlyWhenTheTurnEnded) {
  for (const auto& [bytes, ended] :
       {std::pair{kQuery, true}, std::pair{kExecute + kSync, true}, std::pair{kExecute, false},
        std::pair{kQuery + kExecute, false},
        std::pair{kQuery.substr(0, kQuery.size() - 1), false}}) {
    int told = 0;
    RequestEnded rule{MessageScanner(kTurnMaxBody), [&told] { ++told; }};
    EXPECT_EQ(rule(bytes), ended);
    EXPECT_EQ(told, ended ? 1 : 0);
  }
}

TEST(RequestEnded, AnythingElseDoesNot) {
  EXPECT_FALSE(claims(kExecute));                     // no Sync yet: more follows
  EXPECT_FALSE(claims(kCopyData));                    // COPY data streams on
  EXPECT_FALSE(claims(kQuery.substr(0, 7)));          // half a message
  EXPECT_FALSE(claims(kQuery + kSync.substr(0, 3)));  // a complete Query, then half a Sync
  EXPECT_FALSE(claims("Q\0\0\0\x02"s));               // a bad length is not an ending
}

TEST(RequestEnded, ItContinuesFromTheRelaysScannerState) {
  // The relay already saw the first 7 bytes of a Query; the read brings the rest and a Sync.
  MessageScanner scanner(kTurnMaxBody);
  ASSERT_EQ(scanner.scan(std::string_view(kQuery).substr(0, 7),
                         [](const MessageHeader&) { return true; }),
            MessageScanner::Verdict::ok);
  const std::string rest = kQuery.substr(7) + kSync;
  EXPECT_TRUE(claims(rest, scanner));
  EXPECT_FALSE(claims(rest)) << "read from a fresh scanner, the same bytes are not a request";
  // The rule scans a copy: the relay's own scanner is where it was.
  EXPECT_FALSE(scanner.at_boundary());
  // Only the end of a message whose header came earlier: its type is not known here, so no
  // claim (the next read tries the socket first, as Asio's own read would).
  EXPECT_FALSE(claims(kQuery.substr(7), scanner));
}

const std::string kReadyIdle{'Z', 0, 0, 0, 5, 'I'};

TEST(AnswerEnded, OnlyReadyForQueryIdleAtTheEndEndsTheServersTurn) {
  const AnswerEnded rule;
  EXPECT_TRUE(rule("C\0\0\0\x0DSELECT 1\0"s + kReadyIdle));
  EXPECT_TRUE(rule(kReadyIdle));
  EXPECT_FALSE(rule("Z\0\0\0\x05T"s));  // inside a transaction: the client goes on
  EXPECT_FALSE(rule("Z\0\0\0\x05E"s));
  EXPECT_FALSE(rule(kReadyIdle + "N\0\0\0\x04"s));  // something came after it
  EXPECT_FALSE(rule(kReadyIdle.substr(1)));
  EXPECT_FALSE(rule(""));
}

}  // namespace
}  // namespace pgvigil::proxy::relay
