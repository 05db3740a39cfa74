#pragma once
// A SocketStream over one end of a Unix socketpair, the test holding the other end ("the peer"),
// on an io_context the test runs: for the tests of stream/ that need no server.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "stream/socket_stream.hpp"

namespace pgvigil::stream::test_support {

using namespace std::chrono_literals;
using AfterClaim = SocketStream::AfterClaim;

const std::string kReadyIdle{'Z', 0, 0, 0, 5, 'I'};
const std::string kReadyInTransaction{'Z', 0, 0, 0, 5, 'T'};

// The relay's server rule, restated here so the stream is tested on its own.
struct EndsWithReadyIdle {
  bool operator()(std::span<const char> bytes) const {
    return std::string_view(bytes.data(), bytes.size()).ends_with(kReadyIdle);
  }
};

// In non-blocking mode, as SocketStream::attach() needs its descriptor.
inline void make_non_blocking(int fd) {
  ASSERT_EQ(::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
}

// A socketpair whose first end (the stream's) is non-blocking; the peer's end blocks.
inline void stream_socketpair(int (&fds)[2]) {
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  make_non_blocking(fds[0]);
}

struct Outcome {
  boost::system::error_code ec;
  std::string bytes;
};

class SocketStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int fds[2];
    stream_socketpair(fds);
    ASSERT_TRUE(stream_.attach(fds[0], Ownership::owned));
    peer_ = fds[1];
  }
  void TearDown() override {
    if (peer_ >= 0) ::close(peer_);
  }

  void peer_sends(const std::string& bytes) {
    ASSERT_EQ(::send(peer_, bytes.data(), bytes.size(), 0), static_cast<ssize_t>(bytes.size()));
  }
  // The peer's FIN as TCP delivers it: the socket reports EPOLLRDHUP, not EPOLLHUP (which a
  // close() of a socketpair's end also raises, and which would hide a check that needs RDHUP).
  void peer_sends_fin() { ASSERT_EQ(::shutdown(peer_, SHUT_WR), 0); }
  void peer_closes() {
    ::close(peer_);
    peer_ = -1;
  }

  void start_read(AfterClaim after_claim, std::optional<Outcome>& outcome) {
    stream_.async_read_some(buffer_, after_claim, EndsWithReadyIdle{},
                            [&](boost::system::error_code ec, std::size_t n) {
                              outcome = Outcome{ec, std::string(buffer_.data(), n)};
                            });
  }

  // One read, run until it completes or `patience` passes (nullopt then).
  std::optional<Outcome> read_once(AfterClaim after_claim,
                                   std::chrono::milliseconds patience = 1s) {
    std::optional<Outcome> outcome;
    start_read(after_claim, outcome);
    context_.restart();
    context_.run_for(patience);
    if (!outcome) {
      stream_.cancel();  // completes the read with operation_aborted; not reported
      context_.restart();
      context_.run_for(100ms);
      return std::nullopt;
    }
    return outcome;
  }

  enum class PeerThen { waits, closes, sends_fin };
  // As the relay reads: the read waits first, then the peer sends `bytes` and, at once, what
  // `then` says (one epoll_wait reports both). The read's outcome, or nullopt if there was none.
  std::optional<Outcome> read_while_peer_answers(AfterClaim after_claim, const std::string& bytes,
                                                 PeerThen then) {
    std::optional<Outcome> outcome;
    start_read(after_claim, outcome);
    context_.restart();
    context_.run_for(20ms);
    if (outcome) return std::nullopt;  // completed before anything was sent: wrong
    peer_sends(bytes);
    if (then == PeerThen::closes) peer_closes();
    if (then == PeerThen::sends_fin) peer_sends_fin();
    context_.restart();
    context_.run_for(1s);
    return outcome;
  }

  boost::asio::io_context context_;
  SocketStream stream_{context_.get_executor()};
  std::array<char, 1024> buffer_{};
  int peer_ = -1;
};

}  // namespace pgvigil::stream::test_support
