#pragma once
// The relay's plain-socket read: Asio's async_read_some, except that a read which the caller's
// rule says ended the peer's turn (the server's ReadyForQuery, a client's complete request)
// tells the reactor the socket is drained, so the next read waits without trying first.
//
// Why: Asio 1.81's epoll reactor tries a read as soon as one is started, unless the previous
// read on that descriptor reported the socket drained, which for reads it does only at end of
// file. The relay starts its next read right after forwarding, before the peer can have
// answered, so that try failed with EAGAIN: about one wasted system call per transaction on
// each side (strace, pgbench at 32 clients). Waiting with async_wait instead costs an
// EPOLL_CTL_MOD each time.
//
// What a claim risks: a short read means nothing more was queued except possibly the peer's
// FIN, which recv reports only on the next call. The edge-triggered registration reports every
// later arrival, but a FIN that came with the data was already reported. So the claim is
// recorded (SocketStream::drain_claimed) and the stream's owner makes sure something finds such
// a FIN before it could matter (SocketStream::AfterClaim says how; SocketStream::look() finds
// it in the event loop's last report, loop_readiness.hpp). A read that filled the
// buffer never claims. Claiming every short read was tried: a client that sent half a message
// and closed was never noticed.
//
// Only socket_stream.hpp includes this. It reaches into Asio's reactor through
// reactor_access.hpp, which pins it to the Boost version it was written against.

// reactor_access.hpp first: it brings the public headers Asio's detail headers assume.
// clang-format off
#include "stream/detail/reactor_access.hpp"
#include "stream/detail/loop_readiness.hpp"
#include <boost/asio/detail/reactor_op.hpp>
#include <boost/asio/detail/thread_context.hpp>
#include <boost/asio/detail/thread_info_base.hpp>
#include <algorithm>
#include <cerrno>
#include <new>
#include <span>
#include <sys/socket.h>
#include <utility>
// clang-format on

namespace pgvigil::stream::detail {

// rule(std::span<const char> bytes) -> bool: true when a short read ended the peer's turn.
template <typename Rule, typename Handler>
class TurnReadOp : public asio_detail::reactor_op {
 public:
  // Every relayed transaction starts two reads, so their memory comes from the worker thread's
  // small cache of recently freed operations, as Asio's own operations' does, not from malloc.
  // The cache reuses a block only for a request no larger than it, so the client's and the
  // server's reads (whose rules differ in size) ask for the same size and can share blocks.
  template <typename H>
  static TurnReadOp* create(int fd, DescriptorState* state, std::span<char> buffer, Rule rule,
                            bool* claim, H&& handler) {
    void* memory = asio_detail::thread_info_base::allocate(
        asio_detail::thread_info_base::default_tag(),
        asio_detail::thread_context::top_of_thread_call_stack(), block_size(), alignof(TurnReadOp));
    return new (memory)
        TurnReadOp(fd, state, buffer, std::move(rule), claim, std::forward<H>(handler));
  }

  static void destroy(TurnReadOp* op) {
    op->~TurnReadOp();
    asio_detail::thread_info_base::deallocate(
        asio_detail::thread_info_base::default_tag(),
        asio_detail::thread_context::top_of_thread_call_stack(), op, block_size());
  }
  // From now on only the reactor performs it, for an event it reported.
  void started() { starting_ = false; }

  // Both relay reads (152 and 176 bytes with GCC 12) fit in one block size.
  static constexpr std::size_t block_size() {
    return std::max<std::size_t>(sizeof(TurnReadOp), 192);
  }

 private:
  template <typename H>
  TurnReadOp(int fd, DescriptorState* state, std::span<char> buffer, Rule rule, bool* claim,
             H&& handler)
      : reactor_op(boost::system::error_code(), &do_perform, &do_complete),
        fd_(fd),
        state_(state),
        buffer_(buffer),
        claim_(claim),
        rule_(std::move(rule)),
        handler_(std::forward<H>(handler)) {}

  static status do_perform(reactor_op* base) {
    auto* op = static_cast<TurnReadOp*>(base);
    for (;;) {
      // recv, not read: it skips the VFS layer (about 0.1 µs a call, measured with perf).
      const auto n = ::recv(op->fd_, op->buffer_.data(), op->buffer_.size(), 0);
      if (n > 0) {
        op->bytes_transferred_ = static_cast<std::size_t>(n);
        const bool short_read = op->bytes_transferred_ < op->buffer_.size();
        if (short_read && op->rule_(op->buffer_.first(op->bytes_transferred_))) {
          *op->claim_ = true;
          note_drain_claim(*op->state_, !op->starting_);  // for quiet_since_claim
          return done_and_exhausted;
        }
        return done;
      }
      if (n == 0) {
        op->ec_ = boost::asio::error::eof;
        return done_and_exhausted;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return not_done;
      op->ec_ = boost::system::error_code(errno, boost::asio::error::get_system_category());
      return done;
    }
  }

  // owner is null when the io_context is destroyed with the read still pending: free, no call.
  static void do_complete(void* owner, asio_detail::scheduler_operation* base,
                          const boost::system::error_code&, std::size_t) {
    auto* op = static_cast<TurnReadOp*>(base);
    if (owner == nullptr) return destroy(op);
    Handler handler = std::move(op->handler_);
    const auto ec = op->ec_;
    const auto n = op->bytes_transferred_;
    destroy(op);  // freed before the call: the handler usually starts the next read
    handler(ec, n);
  }

  int fd_;
  DescriptorState* state_;  // the descriptor's reactor registration, alive while it is registered
  // True while start_turn_read tries the read itself or the reactor tries it as it queues it:
  // a try no epoll_wait report prompted (see note_drain_claim).
  bool starting_ = true;
  std::span<char> buffer_;
  bool* claim_;  // the stream's; written only inside perform, while the descriptor is registered
  Rule rule_;    // runs inside the reactor's perform, while the descriptor is registered
  Handler handler_;
};

// Starts a turn read on `descriptor` (open, a stream socket of `reactor`'s io_context).
// try_first makes it try the socket before waiting even after a claim.
template <typename Executor, typename Rule, typename Handler>
void start_turn_read(asio_detail::reactor& reactor,
                     boost::asio::posix::basic_stream_descriptor<Executor>& descriptor,
                     std::span<char> buffer, bool try_first, Rule rule, bool* claim,
                     Handler&& handler) {
  if (!descriptor.native_non_blocking()) descriptor.native_non_blocking(true);
  auto& state = reactor_data(descriptor);
  auto* op = TurnReadOp<Rule, std::decay_t<Handler>>::create(descriptor.native_handle(), state,
                                                             buffer, std::move(rule), claim,
                                                             std::forward<Handler>(handler));
  if (try_first && op->perform() != asio_detail::reactor_op::not_done) {
    reactor.post_immediate_completion(op, /*is_continuation=*/false);
    return;
  }
  reactor.start_op(asio_detail::reactor::read_op, descriptor.native_handle(), state, op,
                   /*is_continuation=*/false, /*allow_speculative=*/true);
  // Queued, or completed and posted: either way not yet run or freed on this thread.
  op->started();
}

}  // namespace pgvigil::stream::detail
