#include "stream/socket_stream.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <charconv>

namespace pgvigil::stream {
namespace asio = boost::asio;
using boost::system::error_code;

namespace {

error_code last_errno_or(error_code fallback) {
  return errno != 0 ? error_code(errno, boost::system::system_category()) : fallback;
}

// What an SSL_read or SSL_write that moved nothing (result <= 0) means: ec set for an error
// (eof for the peer's close_notify), else the way to wait before trying again. Call with errno
// and OpenSSL's error queue cleared before the call.
// One non-blocking send(2)-like call, retried when a signal interrupts it: the bytes it took,
// 0 when the socket has no room, or 0 with ec set on an error.
template <typename Send>
std::size_t send_once(error_code& ec, Send send) {
  while (true) {
    const auto n = send();
    if (n >= 0) return static_cast<std::size_t>(n);
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      ec = error_code(errno, boost::system::system_category());
    }
    return 0;
  }
}

SocketStream::Ready tls_wait_for(SSL* tls, int result, error_code& ec) {
  const int error = SSL_get_error(tls, result);
  if (error == SSL_ERROR_WANT_READ) return SocketStream::Ready::read;
  if (error == SSL_ERROR_WANT_WRITE) return SocketStream::Ready::write;
  ec = error == SSL_ERROR_ZERO_RETURN ? error_code(asio::error::eof)
                                      : last_errno_or(asio::error::connection_reset);
  return SocketStream::Ready::read;
}

}  // namespace

detail::asio_detail::reactor* SocketStream::reactor_of(Executor executor) {
  return &asio::use_service<detail::asio_detail::reactor>(executor.context());
}

SocketStream::SocketStream(Executor executor, HandedOff handed) : SocketStream(executor) {
  if (handed.fd >= 0) attach(handed.fd, handed.ownership, handed.tls);
}

bool SocketStream::adopt(Executor executor, HandedOff handed) {
  close();  // as attach() replaces: an owned descriptor in use is closed, a borrowed one released
  // Asio moves an empty descriptor's (null) registration between the two event loops' services.
  descriptor_ = asio::posix::basic_stream_descriptor<Executor>(executor);
  reactor_ = reactor_of(executor);
  return handed.fd < 0 || attach(handed.fd, handed.ownership, handed.tls);
}

bool SocketStream::attach(int fd, Ownership ownership, SSL* tls) {
  if (is_open()) {
    if (descriptor_.native_handle() == fd && ownership_ == ownership) {
      tls_ = tls;
      return true;
    }
    close();
  }
  error_code ec;
  descriptor_.assign(fd, ec);
  if (ec) {
    // The event loop refused it; an owned descriptor has no other owner to close it.
    if (ownership == Ownership::owned) {
      if (tls != nullptr) SSL_free(tls);
      ::close(fd);
    }
    return false;
  }
  // Every descriptor attached is non-blocking already (attach()'s contract, socket_stream.hpp):
  // Asio is told so rather than setting it again with an ioctl, one system call per new client.
  detail::know_non_blocking(descriptor_);
  ownership_ = ownership;
  tls_ = tls;
  drain_claim_ = false;
  return true;
}

void SocketStream::release() {
  // release() hands the descriptor back without closing it, after unregistering it.
  if (descriptor_.is_open()) descriptor_.release();
  tls_ = nullptr;
  drain_claim_ = false;
}

HandedOff SocketStream::hand_off() {
  HandedOff handed{native_handle(), tls_, ownership_};
  release();
  return handed;
}

void SocketStream::close() {
  if (ownership_ == Ownership::borrowed) return release();
  if (tls_ != nullptr) {
    // close_notify, as PostgreSQL sends: the peer can tell an end from a cut connection. One
    // non-blocking try; its answer is not awaited.
    ERR_clear_error();
    SSL_shutdown(tls_);
    ERR_clear_error();
    SSL_free(tls_);
    tls_ = nullptr;
  }
  error_code ignored;
  if (descriptor_.is_open()) descriptor_.close(ignored);
  drain_claim_ = false;
}

void SocketStream::cancel() {
  if (descriptor_.is_open()) descriptor_.cancel();
}

void SocketStream::shut_reading() {
  if (descriptor_.is_open()) ::shutdown(descriptor_.native_handle(), SHUT_RD);
}

SocketStream::Peer SocketStream::peer_at(const sockaddr_storage& address) {
  if (address.ss_family == AF_UNIX) return {true, {}};
  char text[INET6_ADDRSTRLEN] = {};
  if (address.ss_family == AF_INET) {
    // Dotted quad, as inet_ntop writes it: its sprintf was about 3 % of a new connection's
    // instructions (callgrind, pgbench -C).
    const auto* octets = reinterpret_cast<const unsigned char*>(
        &reinterpret_cast<const sockaddr_in*>(&address)->sin_addr);
    char* at = text;
    for (int i = 0; i < 4; ++i) {
      if (i > 0) *at++ = '.';
      at = std::to_chars(at, text + sizeof text, octets[i]).ptr;
    }
    return {false, std::string(text, at)};
  }
  if (address.ss_family == AF_INET6) {
    ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&address)->sin6_addr, text,
                sizeof text);
  }
  return {false, text};  // unknown: not local, so the rules for TCP clients apply
}

bool SocketStream::tls_has_pending() const { return tls_ != nullptr && SSL_pending(tls_) > 0; }

SocketStream::Peek SocketStream::peek() {
  if (!is_open()) return Peek::failed;
  if (tls_has_pending()) {
    drain_claim_ = false;
    return Peek::data;
  }
  char byte;
  const auto n = ::recv(descriptor_.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0) return Peek::closed;
  if (n > 0 || errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
    drain_claim_ = false;  // looked: nothing hides behind a claim now
    return n > 0 ? Peek::data : Peek::nothing;
  }
  return Peek::failed;
}

SocketStream::Peek SocketStream::look() {
  if (drain_claim_ && tls_ == nullptr && is_open() && detail::quiet_since_claim(descriptor_)) {
    drain_claim_ = false;  // as a peek: nothing hides behind the claim
    return Peek::nothing;
  }
  return peek();
}

bool SocketStream::report_peer_close() {
  return is_open() && detail::report_peer_close(*reactor_, descriptor_);
}

std::size_t SocketStream::try_tls_read(std::span<char> buffer, error_code& ec, bool& needs_write) {
  ec.clear();
  needs_write = false;
  ERR_clear_error();
  errno = 0;
  const int n = SSL_read(tls_, buffer.data(), static_cast<int>(buffer.size()));
  if (n > 0) return static_cast<std::size_t>(n);
  needs_write = tls_wait_for(tls_, n, ec) == Ready::write;
  return 0;
}

asio::awaitable<std::size_t> SocketStream::read_some(std::span<char> buffer, error_code& ec) {
  if (tls_ == nullptr) {
    // The bytes are usually there already (a new client's first packet, with TCP_DEFER_ACCEPT):
    // read at once, the coroutine goes on without an operation posted to the loop and resumed
    // from it (about 1,500 instructions and an epoll_wait, callgrind and strace).
    drain_claim_ = false;
    ssize_t n = -1;
    do {
      // MSG_DONTWAIT: never blocks the worker, whatever the descriptor's mode.
      n = ::recv(descriptor_.native_handle(), buffer.data(), buffer.size(), MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n > 0) co_return static_cast<std::size_t>(n);
    if (n == 0) {
      ec = asio::error::eof;
      co_return 0;
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      ec = error_code(errno, asio::error::get_system_category());
      co_return 0;
    }
    // Nothing yet: the read waits for the loop's next report without trying again first (a
    // wait would re-arm the registration, one epoll_ctl).
    detail::note_found_empty(descriptor_);
    auto [read_ec, read] = co_await descriptor_.async_read_some(
        asio::buffer(buffer.data(), buffer.size()), asio::as_tuple(asio::use_awaitable));
    ec = read_ec;
    co_return ec ? 0 : read;
  }
  while (true) {
    bool needs_write = false;
    const auto n = try_tls_read(buffer, ec, needs_write);
    if (n > 0 || ec) co_return n;
    auto [wait_ec] = co_await async_wait(needs_write ? Ready::write : Ready::read,
                                         asio::as_tuple(asio::use_awaitable));
    if (wait_ec) {
      ec = wait_ec;
      co_return 0;
    }
  }
}

std::size_t SocketStream::try_write(std::span<const char> bytes, error_code& ec, bool& needs_read) {
  ec.clear();
  needs_read = false;
  if (!is_open()) {
    ec = asio::error::bad_descriptor;
    return 0;
  }
  if (tls_ != nullptr) {
    ERR_clear_error();
    errno = 0;
    const int n = SSL_write(tls_, bytes.data(), static_cast<int>(bytes.size()));
    if (n > 0) return static_cast<std::size_t>(n);
    needs_read = tls_wait_for(tls_, n, ec) == Ready::read && !ec;
    return 0;
  }
  return send_once(ec, [&] {
    return ::send(descriptor_.native_handle(), bytes.data(), bytes.size(),
                  MSG_DONTWAIT | MSG_NOSIGNAL);
  });
}

std::size_t SocketStream::try_write(std::span<const std::span<const char>> pieces, error_code& ec,
                                    bool& needs_read) {
  if (pieces.size() > 1 && tls_ == nullptr && is_open()) {
    std::array<iovec, kMaxWritePieces> vectors;
    const auto count = std::min(pieces.size(), vectors.size());
    for (std::size_t i = 0; i < count; ++i) {
      vectors[i] = {const_cast<char*>(pieces[i].data()), pieces[i].size()};
    }
    msghdr message{};
    message.msg_iov = vectors.data();
    message.msg_iovlen = count;
    ec.clear();
    needs_read = false;
    return send_once(ec, [&] {
      return ::sendmsg(descriptor_.native_handle(), &message, MSG_DONTWAIT | MSG_NOSIGNAL);
    });
  }
  // One piece, or TLS (a record per piece): stop at the first piece not taken whole.
  std::size_t written = 0;
  for (const auto& piece : pieces) {
    const auto n = try_write(piece, ec, needs_read);
    written += n;
    if (ec || n < piece.size()) break;
  }
  return written;
}

asio::awaitable<void> SocketStream::write_all(std::span<const char> bytes, error_code& ec) {
  ec.clear();
  while (!bytes.empty()) {
    bool needs_read = false;
    const auto n = try_write(bytes, ec, needs_read);
    if (ec) co_return;
    bytes = bytes.subspan(n);
    if (n > 0) continue;
    // A slow peer: wait for room. Only this stream's relay pair waits with it.
    auto [wait_ec] = co_await async_wait(needs_read ? Ready::read : Ready::write,
                                         asio::as_tuple(asio::use_awaitable));
    if (wait_ec) {
      ec = wait_ec;
      co_return;
    }
  }
}

}  // namespace pgvigil::stream
