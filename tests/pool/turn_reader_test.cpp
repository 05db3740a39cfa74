// TurnReader with the server's rule, as ServerConnection uses it, on real sockets (a Unix
// socketpair; no server needed): what a read that ends with ReadyForQuery claims, and that an
// unchecked claim never hides a FIN that came with the data.
#include "pool/turn_reader.hpp"

#include "pool/server_connection.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>

namespace pgvigil::pool {
namespace {

using namespace std::chrono_literals;
using namespace std::string_literals;

const std::string kReadyIdle{'Z', 0, 0, 0, 5, 'I'};
const std::string kReadyInTransaction{'Z', 0, 0, 0, 5, 'T'};

struct Outcome {
  boost::system::error_code ec;
  std::string bytes;
};

class TurnReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int fds[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    descriptor_.assign(fds[0]);
    peer_ = fds[1];
  }
  void TearDown() override {
    if (peer_ >= 0) ::close(peer_);
  }

  void peer_sends(const std::string& bytes) {
    ASSERT_EQ(::send(peer_, bytes.data(), bytes.size(), 0), static_cast<ssize_t>(bytes.size()));
  }
  void peer_closes() {
    ::close(peer_);
    peer_ = -1;
  }

  // A read as ServerConnection::async_relay_read starts it.
  template <typename Handler>
  void start_read(Handler handler) {
    reader_.async_read(descriptor_, buffer_, std::exchange(drain_claim_, false),
                       AnswerEndedIdle{&drain_claim_}, std::move(handler));
  }

  // One read, run until it completes or `patience` passes (nullopt then).
  std::optional<Outcome> read_once(std::chrono::milliseconds patience = 1s) {
    std::optional<Outcome> outcome;
    start_read([&](boost::system::error_code ec, std::size_t n) {
      outcome = Outcome{ec, std::string(buffer_.data(), n)};
    });
    context_.restart();
    context_.run_for(patience);
    if (!outcome) {
      descriptor_.cancel();  // completes the read with operation_aborted; not reported
      context_.restart();
      context_.run_for(100ms);
      return std::nullopt;
    }
    return outcome;
  }

  boost::asio::io_context context_;
  boost::asio::posix::stream_descriptor descriptor_{context_};
  TurnReader reader_{context_};
  std::array<char, 1024> buffer_{};
  bool drain_claim_ = false;
  int peer_ = -1;
};

TEST_F(TurnReaderTest, ReadyForQueryIdleClaimsTheSocketDrained) {
  peer_sends("C\0\0\0\x0DSELECT 1\0"s + kReadyIdle);
  const auto first = read_once();
  ASSERT_TRUE(first);
  EXPECT_FALSE(first->ec);
  EXPECT_TRUE(first->bytes.ends_with(kReadyIdle));
  EXPECT_TRUE(drain_claim_);
}

TEST_F(TurnReaderTest, OtherEndingsClaimNothing) {
  peer_sends(kReadyInTransaction);
  ASSERT_TRUE(read_once());
  EXPECT_FALSE(drain_claim_);
  peer_sends("D\0\0\0\x0A\0\x01\0\0\0\0"s);  // a DataRow: more may follow
  ASSERT_TRUE(read_once());
  EXPECT_FALSE(drain_claim_);
}

TEST_F(TurnReaderTest, AnUncheckedClaimStillFindsAFinThatCameWithTheAnswer) {
  // The read waits first, then the server answers and closes at once: the event loop sees one
  // edge for both, and the read takes the answer, leaving the FIN queued behind it.
  std::optional<Outcome> answer;
  start_read([&](boost::system::error_code ec, std::size_t n) {
    answer = Outcome{ec, std::string(buffer_.data(), n)};
  });
  context_.run_for(20ms);
  ASSERT_FALSE(answer);
  peer_sends(kReadyIdle);
  peer_closes();
  context_.restart();
  context_.run_for(1s);
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->bytes, kReadyIdle);
  ASSERT_TRUE(drain_claim_);
  // Nothing checked the socket since (no peek cleared the claim), so the next read tries it.
  // No further edge would come: waiting instead would never end.
  const auto next = read_once();
  ASSERT_TRUE(next) << "the FIN queued behind the answer was not reported";
  EXPECT_EQ(next->ec, boost::asio::error::eof);
  EXPECT_FALSE(drain_claim_);
}

TEST_F(TurnReaderTest, ACheckedClaimWaitsAndStillSeesWhatArrivesLater) {
  peer_sends(kReadyIdle);
  ASSERT_TRUE(read_once());
  ASSERT_TRUE(drain_claim_);
  drain_claim_ = false;  // what ServerConnection::quick_check's peek does when it finds nothing
  // Nothing is there, so the read waits. (That it was queued without a first try, the system
  // call the claim saves, shows in strace, not here.)
  std::optional<Outcome> later;
  start_read([&](boost::system::error_code ec, std::size_t n) {
    later = Outcome{ec, std::string(buffer_.data(), n)};
  });
  context_.restart();
  context_.run_for(50ms);
  EXPECT_FALSE(later);
  // Bytes and a close that arrive afterwards are reported by the event loop.
  peer_sends("N\0\0\0\x04"s);
  context_.restart();
  context_.run_for(1s);
  ASSERT_TRUE(later);
  EXPECT_FALSE(later->ec);
  EXPECT_EQ(later->bytes, "N\0\0\0\x04"s);
  peer_closes();
  const auto end = read_once();
  ASSERT_TRUE(end);
  EXPECT_EQ(end->ec, boost::asio::error::eof);
}

// A read still pending when its io_context goes away is freed without its handler being called
// (TurnReadOp's memory comes from Asio's per-thread cache, so this is its own path).
TEST(TurnReaderLifetime, APendingReadIsFreedWithItsContextAndItsHandlerNeverRuns) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  auto witness = std::make_shared<int>(0);
  bool called = false;
  {
    boost::asio::io_context context;
    boost::asio::posix::stream_descriptor descriptor(context, fds[0]);
    TurnReader reader(context);
    std::array<char, 64> buffer{};
    bool claim = false;
    reader.async_read(descriptor, buffer, /*try_first=*/true, AnswerEndedIdle{&claim},
                      [&called, witness](boost::system::error_code, std::size_t) { called = true; });
    context.run_for(50ms);  // nothing to read: the read stays pending
    EXPECT_EQ(witness.use_count(), 2) << "the pending read holds its handler";
  }
  EXPECT_FALSE(called);
  EXPECT_EQ(witness.use_count(), 1) << "the handler (and the read) were not freed";
  ::close(fds[1]);
}

}  // namespace
}  // namespace pgvigil::pool
