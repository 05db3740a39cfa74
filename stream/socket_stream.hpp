#pragma once
// A byte stream over one connected socket (TCP or Unix), in the clear or through TLS (an OpenSSL
// object over the socket), for code that relays bytes and must not pay a coroutine frame per
// operation. Reads and writes try the non-blocking call first and wait on the event loop only
// when the socket has nothing (or no room); a read that ends the peer's turn lets the next one
// wait without trying (detail/turn_read_op.hpp). Both sides of pgvigil's relay use it: client
// sockets, which it owns, and libpq's server sockets, which it borrows.
//
// Not thread-safe: a stream lives on its executor's thread. hand_off() moves it to another.
// Plain writes never raise SIGPIPE (MSG_NOSIGNAL), but a TLS object over OpenSSL's own socket BIO
// writes with write(2): a process using one ignores SIGPIPE (pgvigil's main does).

#include <openssl/types.h>
#include <sys/socket.h>

#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/system/error_code.hpp>
#include <cstdint>
#include <span>
#include <string>
#include <utility>

#include "stream/detail/turn_read_op.hpp"

namespace pgvigil::stream {

// The concrete io_context executor, not any_io_executor: it is 8 bytes instead of 56 in the
// descriptor and in every pending operation, which matters for 10,000 idle clients.
using Executor = boost::asio::io_context::executor_type;

// Who closes the descriptor (and frees the TLS object).
enum class Ownership : std::uint8_t {
  owned,     // the stream: an accepted client socket
  borrowed,  // someone else: libpq's server socket, released (never closed) before PQfinish
};

// A stream taken off its worker by hand_off(), for a stream on another worker to adopt.
struct HandedOff {
  int fd = -1;
  SSL* tls = nullptr;
  Ownership ownership = Ownership::owned;
};

class SocketStream {
 public:
  // How a read starts after an earlier read claimed the socket drained and nothing has looked
  // at the socket since (drain_claimed()): a FIN that arrived with that read raises no event.
  enum class AfterClaim : std::uint8_t {
    wait,       // wait anyway; the caller finds such a FIN itself (peek(), a wait, a write)
    try_first,  // try the socket first, which reports the FIN; costs a system call, unless the
                // event loop saw nothing arrive since the claim (look())
  };
  enum class Ready : std::uint8_t { read, write };
  // The most pieces one try_write sends; the rest waits for the next call.
  static constexpr std::size_t kMaxWritePieces = 16;
  // What one look at the socket found (peek()).
  enum class Peek : std::uint8_t {
    nothing,  // no bytes, no FIN
    data,     // bytes wait (with TLS: a record, which may hold no application data)
    closed,   // the peer's FIN
    failed,   // a socket error (reset)
  };

  explicit SocketStream(Executor executor)
      : descriptor_(executor), reactor_(reactor_of(executor)) {}
  // Adopts a stream handed off by another worker; runs on this stream's worker.
  SocketStream(Executor executor, HandedOff handed);
  ~SocketStream() { close(); }
  SocketStream(const SocketStream&) = delete;
  SocketStream& operator=(const SocketStream&) = delete;

  // Starts using `fd`, registered with the event loop; it must be in non-blocking mode already
  // (accept4 with SOCK_NONBLOCK, libpq's sockets, a handed-off stream's). Replaces (releases or
  // closes) a descriptor in use. tls: the OpenSSL object over fd when the link is encrypted.
  // Returns false when the event loop refuses the descriptor.
  bool attach(int fd, Ownership ownership, SSL* tls = nullptr);
  // Stops using the descriptor without closing it: a borrowed one before its owner closes or
  // replaces it (a reused number must never be unregistered by mistake). Pending operations
  // complete with operation_aborted.
  void release();
  // Gives up the descriptor and TLS object for a stream on another worker to adopt
  // (SocketStream(executor, HandedOff), or adopt()); this stream is empty afterwards.
  HandedOff hand_off();
  // Moves this stream to `executor`'s event loop and takes `handed` there, in place (after
  // hand_off(), say): its owner needs no second stream, nor an optional one, for the move. What
  // the stream still had is ended as close() ends it. Runs on the new executor's worker. False
  // when that event loop refuses the descriptor. From then on the stream must not outlive the new
  // event loop (its descriptor object keeps that loop's service), as if constructed there.
  bool adopt(Executor executor, HandedOff handed);
  // Ends the stream: an owned descriptor is closed (and its TLS object freed), a borrowed one
  // released. Pending operations complete with operation_aborted.
  void close();
  // Completes every pending operation with operation_aborted; the stream stays usable.
  void cancel();
  // Shuts the socket for reading (SHUT_RD): every later read ends at once; writes still go.
  void shut_reading();

  bool is_open() const { return descriptor_.is_open(); }
  int native_handle() { return is_open() ? descriptor_.native_handle() : -1; }
  bool is_tls() const { return tls_ != nullptr; }
  // Who the peer is: a Unix-socket peer (on this host), or a TCP peer's IP address as text
  // ("10.0.0.7", "::1"; "" when unknown), from the address accept4 gave.
  struct Peer {
    bool local = false;
    std::string address;
  };
  static Peer peer_at(const sockaddr_storage& address);
  // The OpenSSL object of a TLS stream (null in the clear), for what the peer's certificate says.
  SSL* tls_object() const { return tls_; }
  // From now on the stream is TLS through `tls` (a completed handshake over this descriptor),
  // which it frees with an owned descriptor.
  void start_tls(SSL* tls) {
    tls_ = tls;
    drain_claim_ = false;
  }
  Executor get_executor() { return descriptor_.get_executor(); }

  // --- reading

  // Calls handler(error_code, std::size_t) with at least one byte read, or with an error (eof,
  // operation_aborted when cancelled or closed). Never inside this call. The buffer must stay
  // valid and not be empty. turn_ended(std::span<const char> bytes) -> bool is asked about a
  // plain read that did not fill the buffer; true claims the socket drained (drain_claimed()).
  // Over TLS nothing is claimed: OpenSSL may hold decrypted bytes the socket no longer shows.
  template <typename Rule, typename Handler>
  void async_read_some(std::span<char> buffer, AfterClaim after_claim, Rule turn_ended,
                       Handler&& handler);
  // A coroutine read for the slow paths (startup, authentication): at least one byte, or 0 with
  // ec set.
  boost::asio::awaitable<std::size_t> read_some(std::span<char> buffer,
                                                boost::system::error_code& ec);
  // A read claimed the socket drained and nothing has looked at the socket since.
  bool drain_claimed() const { return drain_claim_; }

  // One look at the socket without consuming anything (a MSG_PEEK). Anything but `failed`
  // checks a claim.
  Peek peek();
  // peek()'s question, answered from what the event loop already knows when it can, at no system
  // call: `nothing` when the last read claimed the socket drained as the loop reported it, and
  // the loop has seen nothing arrive since (detail/loop_readiness.hpp). It does not see what
  // arrived after the loop's latest epoll_wait, which a peek would. Otherwise (no claim, TLS, an
  // event since, a claim no report prompted, no report_peer_close()) it peeks.
  Peek look();
  // Has the event loop report a peer's close apart from bytes, which look() needs: one
  // epoll_ctl. Call after attach(), on each descriptor. False when the loop refused.
  bool report_peer_close();

  // --- writing

  // One non-blocking write attempt: the bytes written (maybe fewer than asked; 0 when the
  // socket buffer is full). ec set on a real error. needs_read: TLS must read before it can
  // write (renegotiation); wait for Ready::read then.
  std::size_t try_write(std::span<const char> bytes, boost::system::error_code& ec,
                        bool& needs_read);
  // The same for several pieces in order, in one system call on a plain socket (sendmsg).
  std::size_t try_write(std::span<const std::span<const char>> pieces,
                        boost::system::error_code& ec, bool& needs_read);
  // Writes all of `bytes`, waiting while the socket has no room. The slow path, for a peer that
  // did not take everything at once.
  boost::asio::awaitable<void> write_all(std::span<const char> bytes,
                                         boost::system::error_code& ec);

  // --- waiting

  // Completes with an error_code once the socket is readable (or closed) or writable. Over TLS,
  // readable at once when OpenSSL holds decrypted bytes. Any Asio completion token (a plain
  // handler on the relay's paths, deferred in a parallel group with a deadline). A read wait
  // looks at the socket (Asio re-arms the edge-triggered registration), so it checks a claim.
  template <typename Token>
  auto async_wait(Ready ready, Token&& token);

 private:
  static detail::asio_detail::reactor* reactor_of(Executor executor);
  // One SSL_read: bytes read, or 0 with ec set (an error) or not (wait; needs_write says which).
  std::size_t try_tls_read(std::span<char> buffer, boost::system::error_code& ec,
                           bool& needs_write);
  bool tls_has_pending() const;
  template <typename Handler>
  void post(Handler&& handler, boost::system::error_code ec, std::size_t n);

  boost::asio::posix::basic_stream_descriptor<Executor> descriptor_;
  // The reactor, looked up once: use_service takes a lock and searches a list, which showed in
  // profiles when done per read.
  detail::asio_detail::reactor* reactor_;
  SSL* tls_ = nullptr;
  Ownership ownership_ = Ownership::owned;
  // A plain read ended the peer's turn and claimed the socket drained; cleared by whatever
  // looks at the socket next (peek, a read wait, a try-first read).
  bool drain_claim_ = false;
};

template <typename Handler>
void SocketStream::post(Handler&& handler, boost::system::error_code ec, std::size_t n) {
  boost::asio::post(descriptor_.get_executor(), [handler = std::forward<Handler>(handler), ec,
                                                 n]() mutable { handler(ec, n); });
}

template <typename Rule, typename Handler>
void SocketStream::async_read_some(std::span<char> buffer, AfterClaim after_claim, Rule turn_ended,
                                   Handler&& handler) {
  if (!is_open()) {
    return post(std::forward<Handler>(handler), boost::asio::error::operation_aborted, 0);
  }
  if (tls_ == nullptr) {
    // A claim the event loop vouches for (nothing arrived since) needs no try either.
    const bool try_first = after_claim == AfterClaim::try_first &&
                           std::exchange(drain_claim_, false) &&
                           !detail::quiet_since_claim(descriptor_);
    detail::start_turn_read(*reactor_, descriptor_, buffer, try_first, std::move(turn_ended),
                            &drain_claim_, std::forward<Handler>(handler));
    return;
  }
  // TLS: OpenSSL may hold decrypted bytes already, so SSL_read comes first; the socket is
  // waited on only when it asks for more.
  boost::system::error_code ec;
  bool needs_write = false;
  const auto n = try_tls_read(buffer, ec, needs_write);
  if (n > 0 || ec) return post(std::forward<Handler>(handler), ec, n);
  descriptor_.async_wait(
      needs_write ? boost::asio::posix::descriptor_base::wait_write
                  : boost::asio::posix::descriptor_base::wait_read,
      [this, buffer, after_claim, turn_ended = std::move(turn_ended),
       handler = std::forward<Handler>(handler)](boost::system::error_code wait_ec) mutable {
        if (wait_ec) return handler(wait_ec, std::size_t{0});
        async_read_some(buffer, after_claim, std::move(turn_ended), std::move(handler));
      });
}

template <typename Token>
auto SocketStream::async_wait(Ready ready, Token&& token) {
  return boost::asio::async_initiate<Token, void(boost::system::error_code)>(
      [this, ready](auto handler) {
        if (!is_open()) {
          return boost::asio::post(
              descriptor_.get_executor(), [handler = std::move(handler)]() mutable {
                handler(boost::system::error_code(boost::asio::error::operation_aborted));
              });
        }
        if (ready == Ready::read) {
          drain_claim_ = false;
          if (tls_has_pending()) {
            return boost::asio::post(
                descriptor_.get_executor(),
                [handler = std::move(handler)]() mutable { handler(boost::system::error_code()); });
          }
        }
        descriptor_.async_wait(ready == Ready::read
                                   ? boost::asio::posix::descriptor_base::wait_read
                                   : boost::asio::posix::descriptor_base::wait_write,
                               std::move(handler));
      },
      token);
}

}  // namespace pgvigil::stream
