// SocketStream::look() on real sockets: the lending check answered from what the event loop
// already knows (stream/detail/loop_readiness.hpp). It must never say `nothing` where a FIN or
// bytes reached the loop since the last read claimed the socket drained, above all a FIN that came
// with that read's answer, which no later event reports. The peer ends with shutdown(SHUT_WR):
// a FIN as TCP delivers it, which raises EPOLLRDHUP but not EPOLLHUP.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <array>
#include <boost/asio/executor_work_guard.hpp>
#include <chrono>
#include <optional>
#include <string>

#include "stream/socket_stream.hpp"
#include "tests/stream/socket_stream_fixture.hpp"

namespace pgvigil::stream {
namespace {

using namespace std::chrono_literals;
using namespace std::string_literals;
using namespace test_support;
using Peek = SocketStream::Peek;

class LoopReadinessTest : public SocketStreamTest {
 protected:
  void SetUp() override {
    SocketStreamTest::SetUp();
    ASSERT_TRUE(stream_.report_peer_close());
  }

  // As the relay reads a server: the read waits, the peer answers, the loop reports it and the
  // read takes it, claiming the socket drained.
  void read_an_answer() {
    const auto answer = read_while_peer_answers(AfterClaim::wait, kReadyIdle, PeerThen::waits);
    ASSERT_TRUE(answer);
    ASSERT_EQ(answer->bytes, kReadyIdle);
    ASSERT_TRUE(stream_.drain_claimed());
  }

  // Runs the event loop's epoll_wait (with no operation pending, as for an idle pooled
  // connection; the guard keeps run_for from returning before it polls).
  void let_the_loop_poll() {
    auto guard = boost::asio::make_work_guard(context_);
    context_.restart();
    context_.run_for(20ms);
  }
};

TEST_F(LoopReadinessTest, AQuietSocketIsAnsweredFromTheLoopNotTheSocket) {
  read_an_answer();
  // Bytes the loop has not polled yet: only a look at the socket would see them, so `nothing`
  // here shows the answer came from the loop (a peek costs a system call per lending).
  peer_sends("N\0\0\0\x04"s);
  EXPECT_EQ(stream_.look(), Peek::nothing);
  EXPECT_FALSE(stream_.drain_claimed()) << "the claim was checked";
}

TEST_F(LoopReadinessTest, BytesTheLoopHasSeenSinceTheClaimAreFound) {
  read_an_answer();
  peer_sends("N\0\0\0\x04"s);  // a notice from an idle server
  let_the_loop_poll();
  EXPECT_EQ(stream_.look(), Peek::data);
}

TEST_F(LoopReadinessTest, AFinTheLoopHasSeenSinceTheClaimIsFound) {
  read_an_answer();
  peer_sends_fin();
  let_the_loop_poll();
  EXPECT_EQ(stream_.look(), Peek::closed);
}

TEST_F(LoopReadinessTest, AFinThatCameWithTheAnswerIsFound) {
  // The read waits first; then the peer answers and closes at once, so one epoll_wait reports
  // both and no later event will come for the FIN: only the hang-up bit in that report shows it.
  ASSERT_TRUE(read_while_peer_answers(AfterClaim::wait, kReadyIdle, PeerThen::sends_fin));
  ASSERT_TRUE(stream_.drain_claimed());
  EXPECT_EQ(stream_.look(), Peek::closed);
}

TEST_F(LoopReadinessTest, ATryFirstReadStillFindsAFinThatCameWithTheAnswer) {
  // The server side's read after a claim tries first unless the loop vouches for the socket; with
  // the FIN in the loop's last report it does not, and the read finds the end of the stream.
  ASSERT_TRUE(read_while_peer_answers(AfterClaim::wait, kReadyIdle, PeerThen::sends_fin));
  ASSERT_TRUE(stream_.drain_claimed());
  const auto next = read_once(AfterClaim::try_first);
  ASSERT_TRUE(next) << "the FIN queued behind the answer was not reported";
  EXPECT_EQ(next->ec, boost::asio::error::eof);
}

TEST_F(LoopReadinessTest, AReadAfterAVouchedClaimWaitsAndGetsWhatArrivesLater) {
  read_an_answer();
  // Nothing is there: the read waits (an early completion fails here), and gets what comes.
  const auto later =
      read_while_peer_answers(AfterClaim::try_first, "N\0\0\0\x04"s, PeerThen::waits);
  ASSERT_TRUE(later);
  EXPECT_EQ(later->bytes, "N\0\0\0\x04"s);
  // The notice ended no turn, so nothing is claimed now and look() peeks.
  EXPECT_FALSE(stream_.drain_claimed());
  peer_sends_fin();
  EXPECT_EQ(stream_.look(), Peek::closed);
}

TEST_F(LoopReadinessTest, AClaimNoReportPromptedIsLookedAtAfterwards) {
  // The answer and the FIN are both queued before the read starts, so the read takes the answer
  // as it starts, before any epoll_wait reported the socket: no report shows the FIN, and only
  // a look at the socket finds it.
  peer_sends(kReadyIdle);
  peer_sends_fin();
  std::optional<Outcome> answer;
  start_read(AfterClaim::wait, answer);
  ASSERT_TRUE(stream_.drain_claimed()) << "the read did not take the answer as it started";
  EXPECT_EQ(stream_.look(), Peek::closed);
  context_.restart();
  context_.run_for(100ms);
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->bytes, kReadyIdle);
}

TEST(LoopReadinessWithoutReport, AStreamWhoseLoopCannotTellAFinPeeks) {
  // Without report_peer_close() the loop's events do not tell a FIN from bytes: look() peeks,
  // so bytes the loop has not polled are seen.
  boost::asio::io_context context;
  SocketStream stream(context.get_executor());
  int fds[2];
  stream_socketpair(fds);
  ASSERT_TRUE(stream.attach(fds[0], Ownership::owned));
  ASSERT_EQ(::send(fds[1], kReadyIdle.data(), kReadyIdle.size(), 0), 6);
  std::array<char, 64> buffer{};
  std::optional<std::size_t> read;
  stream.async_read_some(buffer, AfterClaim::try_first, EndsWithReadyIdle{},
                         [&](boost::system::error_code, std::size_t n) { read = n; });
  context.run_for(1s);
  ASSERT_EQ(read, 6u);
  ASSERT_TRUE(stream.drain_claimed());
  ASSERT_EQ(::send(fds[1], "N\0\0\0\x04", 5, 0), 5);
  EXPECT_EQ(stream.look(), Peek::data);
  ::close(fds[1]);
}

}  // namespace
}  // namespace pgvigil::stream
