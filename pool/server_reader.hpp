#pragma once
// ServerReader: the relay's read of a server socket. Asio's async_read_some, except that a read
// ending the server's answer (ReadyForQuery, idle) tells the reactor the socket is drained.
//
// Why: Asio 1.81's epoll reactor tries a read as soon as one is started, unless the previous
// read on that descriptor reported the socket drained, which for reads it does only at end of
// file. In transaction pooling every transaction starts a server read right after forwarding
// the client's query, before the server can have answered, so that try failed with EAGAIN: one
// wasted system call per transaction. (Waiting with async_wait instead costs an EPOLL_CTL_MOD.)
//
// Why only after ReadyForQuery idle, and why the claim must be checked: a short read means
// nothing more was queued except possibly the peer's FIN, which recv reports only on the next
// call; the edge-triggered registration reports every later arrival, but a FIN that came with
// the data was already reported. So the read records its claim in a flag of the caller's, and
// the next read tries the socket first anyway unless something checked it in between: the peek
// before a pooled connection is lent again (ServerConnection::quick_check) clears the flag. In
// transaction pooling that peek always comes between, which is where the system call is saved;
// in session pooling, or after bytes that only looked like ReadyForQuery, the next read tries
// first as before. (Claiming every short read as drained was tried: a client that sent half a
// message and closed was never noticed.)
//
// This reaches into Asio's reactor (boost::asio::detail), so it is pinned to the Boost version it
// was written against; the static_assert below turns an upgrade into a compile error to revisit.

// The public headers first: Asio's detail headers assume they were included.
#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/basic_stream_descriptor.hpp>
#include <boost/asio/detail/reactive_descriptor_service.hpp>
#include <boost/asio/detail/reactor.hpp>
#include <boost/asio/detail/reactor_op.hpp>
#include <boost/version.hpp>
#include <algorithm>
#include <cerrno>
#include <iterator>
#include <memory>
#include <span>
#include <sys/socket.h>
#include <utility>

static_assert(BOOST_VERSION == 108100,
              "pool/server_reader.hpp uses Boost 1.81's reactor internals: check them again");

namespace pgvigil::pool {
namespace server_reader_detail {

namespace asio_detail = boost::asio::detail;
using DescriptorImpl = asio_detail::reactive_descriptor_service::implementation_type;
using ReactorData = asio_detail::reactor::per_descriptor_data;

// The reactor registration of a descriptor is private to Asio's descriptor service. An explicit
// instantiation may name a private member (the language exempts it from access checks), which
// is the one sanctioned way to reach it without patching Boost.
struct ReactorDataTag {
  using type = ReactorData DescriptorImpl::*;
  friend type member_pointer(ReactorDataTag);
};
template <typename Tag, typename Tag::type Member>
struct ExposeMember {
  friend typename Tag::type member_pointer(Tag) { return Member; }
};
template struct ExposeMember<ReactorDataTag, &DescriptorImpl::reactor_data_>;

// The descriptor's implementation object is protected, so a derived class may name it.
template <typename Executor>
struct DescriptorAccess : boost::asio::posix::basic_stream_descriptor<Executor> {
  static DescriptorImpl& implementation(boost::asio::posix::basic_stream_descriptor<Executor>& d) {
    constexpr auto impl = &DescriptorAccess::impl_;
    return (d.*impl).get_implementation();
  }
};

template <typename Handler>
class ServerReadOp : public asio_detail::reactor_op {
 public:
  template <typename H>
  ServerReadOp(int fd, std::span<char> buffer, bool& drain_claim, H&& handler)
      : reactor_op(boost::system::error_code(), &do_perform, &do_complete),
        fd_(fd),
        buffer_(buffer),
        drain_claim_(&drain_claim),
        handler_(std::forward<H>(handler)) {}

  // The bytes end with ReadyForQuery reporting an idle session: 'Z', length 5, 'I'.
  static bool ends_idle(std::span<const char> bytes) {
    static constexpr char kReadyIdle[] = {'Z', 0, 0, 0, 5, 'I'};
    return bytes.size() >= sizeof kReadyIdle &&
           std::equal(std::begin(kReadyIdle), std::end(kReadyIdle),
                      bytes.end() - static_cast<std::ptrdiff_t>(sizeof kReadyIdle));
  }

 private:
  // Runs while the descriptor is registered, so the caller's flag is alive.
  static status do_perform(reactor_op* base) {
    auto* op = static_cast<ServerReadOp*>(base);
    for (;;) {
      // recv, not read: it skips the VFS layer (about 0.1 µs a call, measured with perf).
      const auto n = ::recv(op->fd_, op->buffer_.data(), op->buffer_.size(), 0);
      if (n > 0) {
        op->bytes_transferred_ = static_cast<std::size_t>(n);
        if (!ends_idle(op->buffer_.first(op->bytes_transferred_))) return done;
        *op->drain_claim_ = true;
        return done_and_exhausted;
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
    std::unique_ptr<ServerReadOp> op(static_cast<ServerReadOp*>(base));
    if (owner == nullptr) return;
    Handler handler = std::move(op->handler_);
    const auto ec = op->ec_;
    const auto n = op->bytes_transferred_;
    op.reset();  // freed before the call: the handler usually starts the next read
    handler(ec, n);
  }

  int fd_;
  std::span<char> buffer_;
  bool* drain_claim_;
  Handler handler_;
};

}  // namespace server_reader_detail

// Reads server sockets of one io_context. Holds that context's reactor, looked up once:
// use_service takes a lock and searches a list, which showed in profiles when done per read.
class ServerReader {
 public:
  explicit ServerReader(boost::asio::execution_context& context)
      : reactor_(&boost::asio::use_service<server_reader_detail::asio_detail::reactor>(context)) {}

  // Calls handler(error_code, std::size_t) with at least one byte read, or with an error (eof,
  // operation_aborted when the descriptor is cancelled or closed): descriptor.async_read_some's
  // contract. The descriptor must be an open stream socket of this reader's io_context and the
  // buffer not empty. The handler runs from the io_context, never inside this call.
  //
  // drain_claim is the caller's flag for this socket (see the top of this file): set when a
  // read claims the socket drained; while set, the next read tries the socket first. Whoever
  // checks the socket for pending bytes and a FIN may clear it.
  template <typename Executor, typename Handler>
  void async_read(boost::asio::posix::basic_stream_descriptor<Executor>& descriptor,
                  std::span<char> buffer, bool& drain_claim, Handler&& handler) {
    namespace d = server_reader_detail;
    if (!descriptor.native_non_blocking()) descriptor.native_non_blocking(true);
    auto* op = new d::ServerReadOp<std::decay_t<Handler>>(descriptor.native_handle(), buffer,
                                                          drain_claim,
                                                          std::forward<Handler>(handler));
    const bool try_first = std::exchange(drain_claim, false);
    if (try_first && op->perform() != d::asio_detail::reactor_op::not_done) {
      reactor_->post_immediate_completion(op, /*is_continuation=*/false);
      return;
    }
    auto& reactor_data = d::DescriptorAccess<Executor>::implementation(descriptor).*
                         member_pointer(d::ReactorDataTag{});
    reactor_->start_op(d::asio_detail::reactor::read_op, descriptor.native_handle(), reactor_data,
                       op, /*is_continuation=*/false, /*allow_speculative=*/true);
  }

 private:
  server_reader_detail::asio_detail::reactor* reactor_;
};

}  // namespace pgvigil::pool
