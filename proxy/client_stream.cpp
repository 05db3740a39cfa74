#include "proxy/client_stream.hpp"

#include <sys/socket.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>

namespace pgvigil::proxy {
namespace asio = boost::asio;

ClientStream::ClientStream(Executor executor, int fd)
    : descriptor_(executor, fd), reader_(executor.context()) {}

bool ClientStream::peer_closed() {
  char byte;
  const auto peeked = ::recv(descriptor_.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (peeked >= 0) return peeked == 0;
  return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

asio::awaitable<std::size_t> ClientStream::read_some(std::span<char> buffer,
                                                     boost::system::error_code& ec) {
  // async_read_some reads first and waits only when there is nothing: unlike recv followed by
  // async_wait, it costs no extra system call and does not re-arm the epoll registration.
  auto [read_ec, n] = co_await descriptor_.async_read_some(
      asio::buffer(buffer.data(), buffer.size()), asio::as_tuple(asio::use_awaitable));
  ec = read_ec;
  co_return ec ? 0 : n;
}

asio::awaitable<void> ClientStream::write_all(std::span<const char> bytes,
                                              boost::system::error_code& ec) {
  while (true) {
    const auto n = try_write(bytes, ec);
    if (ec) co_return;
    bytes = bytes.subspan(n);
    if (bytes.empty()) co_return;
    if (n > 0) continue;
    // A slow client: wait for room. Only this session's server connection waits with it.
    auto [wait_ec] = co_await descriptor_.async_wait(asio::posix::descriptor_base::wait_write,
                                                     asio::as_tuple(asio::use_awaitable));
    if (wait_ec) {
      ec = wait_ec;
      co_return;
    }
  }
}

std::size_t ClientStream::try_write(std::span<const char> bytes, boost::system::error_code& ec) {
  ec.clear();
  if (!descriptor_.is_open()) {
    ec = asio::error::bad_descriptor;
    return 0;
  }
  while (true) {
    const auto n = ::send(descriptor_.native_handle(), bytes.data(), bytes.size(),
                          MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n >= 0) return static_cast<std::size_t>(n);
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      ec = boost::system::error_code(errno, boost::system::system_category());
    }
    return 0;
  }
}

void ClientStream::cancel() {
  if (descriptor_.is_open()) descriptor_.cancel();
}

int ClientStream::release() { return descriptor_.is_open() ? descriptor_.release() : -1; }

void ClientStream::close() {
  boost::system::error_code ignored;
  descriptor_.close(ignored);
}

}  // namespace pgvigil::proxy
