// The relay's client-side forwarder (proxy/relay/message_forwarder): what it plans to send, what
// it holds back, and which messages its visitor sees whole, for every way a read can cut the
// stream.
#include "proxy/relay/message_forwarder.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "tests/proxy/wire_bytes.hpp"

namespace pgvigil::proxy::relay {
namespace {

using wire::test::be32;
using wire::test::kExecute;
using wire::test::kSync;
using wire::test::message;
using wire::test::parse;
using wire::test::query;

constexpr std::uint32_t kForwarderMaxBody = 1 << 26;

std::string text(ForwardPlan& plan) {
  std::string out;
  for (const auto& piece : plan.pieces()) out.append(piece.data(), piece.size());
  return out;
}

struct Seen {
  char type;
  std::string whole;  // empty for messages not seen whole
};

// Feeds `reads` one after the other; returns what was planned in all and what was seen.
struct Fed {
  std::string planned;
  std::vector<Seen> seen;
  RequestForwarder::Verdict last = RequestForwarder::Verdict::ok;
};
Fed feed(RequestForwarder& forwarder, const std::vector<std::string>& reads, char refuse_type = 0) {
  Fed run;
  ForwardPlan plan;
  for (const auto& read : reads) {
    run.last = forwarder.take(
        read, plan, [&](const MessageHeader& header, std::span<const char> whole, Edit&) {
          run.seen.push_back({header.type, std::string(whole.data(), whole.size())});
          return header.type != refuse_type;
        });
    run.planned += text(plan);
    if (run.last != RequestForwarder::Verdict::ok) break;
  }
  return run;
}

TEST(RequestForwarder, MessagesInOneReadGoOnAsOnePieceAndTheWholeTypesAreSeenWhole) {
  RequestForwarder forwarder(kForwarderMaxBody);
  const std::string input = parse("", "SELECT $1") + message('B', std::string(8, '\0')) +
                            message('D', std::string("P\0", 2)) + kExecute + kSync;
  ForwardPlan plan;
  std::vector<Seen> seen;
  EXPECT_EQ(forwarder.take(input, plan,
                           [&](const MessageHeader& header, std::span<const char> whole, Edit&) {
                             seen.push_back({header.type, std::string(whole.data(), whole.size())});
                             return true;
                           }),
            RequestForwarder::Verdict::ok);
  ASSERT_EQ(plan.pieces().size(), 1u) << "one send, straight from the read";
  EXPECT_EQ(plan.pieces()[0].data(), input.data());
  EXPECT_EQ(text(plan), input);
  ASSERT_EQ(seen.size(), 5u);
  EXPECT_EQ(seen[0].whole, parse("", "SELECT $1"));
  EXPECT_EQ(seen[1].whole, message('B', std::string(8, '\0')));
  EXPECT_EQ(seen[2].whole, message('D', std::string("P\0", 2)));
  EXPECT_EQ(seen[3].type, 'E');
  EXPECT_TRUE(seen[3].whole.empty()) << "Execute passes as bytes";
  EXPECT_TRUE(seen[4].whole.empty());
  EXPECT_TRUE(forwarder.at_boundary());
}

TEST(RequestForwarder, AWholeTypeCutByTheReadIsHeldBackUntilItIsComplete) {
  RequestForwarder forwarder(kForwarderMaxBody);
  const std::string first = kSync;
  const std::string q = query("SELECT 'a rather long query text'");
  ForwardPlan plan;
  std::vector<Seen> seen;
  const auto visit = [&](const MessageHeader& header, std::span<const char> whole, Edit&) {
    seen.push_back({header.type, std::string(whole.data(), whole.size())});
    return true;
  };
  // Sync, then the first 12 bytes of the query: only the Sync goes on.
  const std::string read1 = first + q.substr(0, 12);
  ASSERT_EQ(forwarder.take(read1, plan, visit), RequestForwarder::Verdict::ok);
  EXPECT_EQ(text(plan), first);
  EXPECT_FALSE(forwarder.at_boundary());
  EXPECT_TRUE(forwarder.planned_to_boundary()) << "nothing of the query reached the server";
  ASSERT_EQ(seen.size(), 1u);
  // The rest of the query and a Sync: the query, whole, then the Sync.
  const std::string read2 = q.substr(12) + kSync;
  ASSERT_EQ(forwarder.take(read2, plan, visit), RequestForwarder::Verdict::ok);
  EXPECT_EQ(text(plan), q + kSync);
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[1].whole, q);
  EXPECT_EQ(seen[2].type, 'S');
  EXPECT_TRUE(forwarder.at_boundary());
}

TEST(RequestForwarder, AHeaderCutByTheReadIsHeldEvenForStreamedTypes) {
  RequestForwarder forwarder(kForwarderMaxBody);
  const std::string copy = message('d', "row data\n");
  Fed run = feed(forwarder, {copy.substr(0, 3)});
  EXPECT_EQ(run.planned, "") << "the type and length are not known yet";
  EXPECT_TRUE(forwarder.planned_to_boundary());
  run = feed(forwarder, {copy.substr(3, 4)});  // header complete, first body byte too
  EXPECT_EQ(run.planned, copy.substr(0, 7));
  ASSERT_EQ(run.seen.size(), 1u);
  EXPECT_TRUE(run.seen[0].whole.empty());
  EXPECT_FALSE(forwarder.planned_to_boundary()) << "the server has part of a message now";
  run = feed(forwarder, {copy.substr(7)});
  EXPECT_EQ(run.planned, copy.substr(7)) << "the rest streams";
  EXPECT_TRUE(forwarder.at_boundary());
}

TEST(RequestForwarder, AMessageLargerThanTheWholeLimitStreamsWithOnlyItsHeaderSeen) {
  RequestForwarder forwarder(kForwarderMaxBody);
  const std::string big = query(std::string(kWholeLimit, 'x'));
  const Fed run =
      feed(forwarder, {big.substr(0, 1000), big.substr(1000, 20000), big.substr(21000)});
  EXPECT_EQ(run.planned, big);
  ASSERT_EQ(run.seen.size(), 1u);
  EXPECT_EQ(run.seen[0].type, 'Q');
  EXPECT_TRUE(run.seen[0].whole.empty());
  // What streamed went out as it came: the first read already planned its part.
  RequestForwarder again(kForwarderMaxBody);
  EXPECT_EQ(feed(again, {big.substr(0, 1000)}).planned, big.substr(0, 1000));
}

TEST(RequestForwarder, ARefusedMessageAndWhatFollowsItAreNeverPlanned) {
  RequestForwarder forwarder(kForwarderMaxBody);
  const std::string named = parse("s1", "SELECT 1");
  const Fed run = feed(forwarder, {query("SELECT 1") + named + kSync}, 'P');
  EXPECT_EQ(run.last, RequestForwarder::Verdict::stopped);
  EXPECT_EQ(run.planned, query("SELECT 1"));
  ASSERT_EQ(run.seen.size(), 2u);
  EXPECT_EQ(run.seen[1].whole, named);
}

TEST(RequestForwarder, AHeldMessageRefusedOnCompletionLeavesNothingOfItself) {
  RequestForwarder forwarder(kForwarderMaxBody);
  const std::string named = parse("s1", "SELECT 1");
  const Fed run = feed(
      forwarder, {kSync + named.substr(0, 2), named.substr(2, 5), named.substr(7) + kSync}, 'P');
  EXPECT_EQ(run.last, RequestForwarder::Verdict::stopped);
  EXPECT_EQ(run.planned, kSync);
}

TEST(RequestForwarder, ABadLengthIsAViolation) {
  RequestForwarder forwarder(1024);
  EXPECT_EQ(feed(forwarder, {std::string("Q\0\0\0\x02", 5)}).last,
            RequestForwarder::Verdict::bad_length);
  RequestForwarder small(1024);
  EXPECT_EQ(feed(small, {std::string(1, 'd') + be32(5000)}).last,
            RequestForwarder::Verdict::bad_length);
}

// Any way of cutting any stream: the plans add up to the stream, and the visitor sees every
// message once, in order, the whole types whole.
TEST(RequestForwarder, EveryCutOfAStreamPlansTheStreamAndShowsEveryMessageOnce) {
  std::mt19937 random(20261202);
  const std::vector<std::string> kinds = {
      query("SELECT 1"),
      parse("", "SELECT $1::int"),
      message('B', std::string(30, 'b')),
      message('D', std::string("S\0", 2)),
      message('C', std::string("S\0", 2)),
      kExecute,
      kSync,
      message('d', std::string(5000, 'c')),
      message('d', ""),
      query(std::string(40000, 'q')),  // above the whole limit
      message('H', ""),
  };
  for (int trial = 0; trial < 300; ++trial) {
    std::string stream;
    std::vector<std::string> messages;
    const int count = 1 + static_cast<int>(random() % 12);
    for (int i = 0; i < count; ++i) {
      messages.push_back(kinds[random() % kinds.size()]);
      stream += messages.back();
    }
    std::vector<std::string> reads;
    // Every fourth trial cuts the stream into tiny reads, so headers span several of them.
    const std::size_t most = trial % 4 == 0 ? 7 : 9000;
    for (std::size_t at = 0; at < stream.size();) {
      const std::size_t size = std::min<std::size_t>(stream.size() - at, 1 + random() % most);
      reads.push_back(stream.substr(at, size));
      at += size;
    }
    RequestForwarder forwarder(kForwarderMaxBody);
    const Fed run = feed(forwarder, reads);
    ASSERT_EQ(run.last, RequestForwarder::Verdict::ok) << "trial " << trial;
    ASSERT_EQ(run.planned, stream) << "trial " << trial;
    ASSERT_EQ(run.seen.size(), messages.size()) << "trial " << trial;
    for (std::size_t i = 0; i < messages.size(); ++i) {
      const bool whole =
          RequestForwarder::seen_whole(messages[i][0]) && messages[i].size() <= kWholeLimit;
      EXPECT_EQ(run.seen[i].type, messages[i][0]) << "trial " << trial << " message " << i;
      EXPECT_EQ(run.seen[i].whole, whole ? messages[i] : "")
          << "trial " << trial << " message " << i;
    }
    EXPECT_TRUE(forwarder.at_boundary());
  }
}

TEST(MessageForwarder, AVisitorCanInsertBeforeDropOrReplaceAMessageShownWhole) {
  // In one read, and across reads (the query held back until whole).
  const std::string q1 = query("SELECT 1");
  const std::string q2 = query("SELECT 2");
  const std::string q3 = query("SELECT 3");
  const std::string stream = kSync + q1 + q2 + q3 + kSync;
  for (const std::size_t cut : {stream.size(), std::size_t{7}, std::size_t{12}, std::size_t{30}}) {
    SCOPED_TRACE(cut);
    RequestForwarder forwarder(kForwarderMaxBody);
    ForwardPlan plan;
    std::string planned;
    const auto visit = [&](const MessageHeader&, std::span<const char> whole, Edit& edit) {
      const std::string message(whole.data(), whole.size());
      if (message == q1) edit.insert("<before 1>");
      if (message == q2) edit.drop();
      if (message == q3) edit.replace("<instead of 3>");
      return true;
    };
    for (const auto& read : {stream.substr(0, cut), stream.substr(cut)}) {
      if (read.empty()) continue;
      ASSERT_EQ(forwarder.take(read, plan, visit), RequestForwarder::Verdict::ok);
      planned += text(plan);
    }
    EXPECT_EQ(planned, kSync + "<before 1>" + q1 + "<instead of 3>" + kSync);
  }
}

TEST(MessageForwarder, TheServersCompletionsAndReadyForQueryAreShownWholeButRowsStream) {
  const std::string rows = message('D', std::string(100, 'r'));
  const std::string answer =
      message('2', "") + rows + message('C', std::string("SELECT 1\0", 9)) + message('Z', "I");
  ResponseForwarder forwarder(kForwarderMaxBody);
  ForwardPlan plan;
  std::string seen;
  ASSERT_EQ(forwarder.take(answer, plan,
                           [&](const MessageHeader& header, std::span<const char> whole, Edit&) {
                             seen += header.type;
                             seen += whole.empty() ? '-' : '+';
                             return true;
                           }),
            ResponseForwarder::Verdict::ok);
  EXPECT_EQ(seen, "2+D-C+Z+");
  EXPECT_EQ(text(plan), answer);
}

TEST(ForwardPlan, CopiesKeepTheirPlaceWhileThePlanGrows) {
  const std::string read = "0123456789";
  ForwardPlan plan;
  plan.add({read.data(), 3});
  plan.add_copy("AB");
  plan.add_copy("CD");  // joins the previous copy
  plan.add({read.data() + 3, 2});
  for (int i = 0; i < 100; ++i) plan.add_copy(std::string(50, 'x'));  // storage moves
  EXPECT_EQ(plan.pieces().size(), 4u);
  EXPECT_EQ(text(plan).substr(0, 9), "012ABCD34");
  EXPECT_EQ(plan.bytes(), 9u + 5000u);
}

TEST(ForwardPlan, AdjacentPiecesJoinAndEmptyOnesVanish) {
  const std::string bytes = "abcdef";
  const std::string other = "xyz";
  ForwardPlan plan;
  plan.add({bytes.data(), 2});
  plan.add({bytes.data() + 2, 3});
  plan.add({other.data(), 0});
  plan.add({other.data(), 3});
  ASSERT_EQ(plan.pieces().size(), 2u);
  EXPECT_EQ(plan.bytes(), 8u);
  EXPECT_EQ(text(plan), "abcdexyz");
  plan.clear();
  EXPECT_TRUE(plan.empty());
}

}  // namespace
}  // namespace pgvigil::proxy::relay
