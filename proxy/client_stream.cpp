#include "proxy/client_stream.hpp"

#include <sys/socket.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>

namespace pgvigil::proxy {
namespace asio = boost::asio;

ClientStream::ClientStream(Executor executor, int fd) : descriptor_(executor, fd) {}

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
  ec.clear();
  while (!bytes.empty()) {
    if (!descriptor_.is_open()) {
      ec = asio::error::bad_descriptor;
      co_return;
    }
    const auto n = ::send(descriptor_.native_handle(), bytes.data(), bytes.size(),
                          MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      bytes = bytes.subspan(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      ec = boost::system::error_code(errno, boost::system::system_category());
      co_return;
    }
    // A slow client: wait for room. Only this session's server connection waits with it.
    auto [wait_ec] = co_await descriptor_.async_wait(asio::posix::descriptor_base::wait_write,
                                                     asio::as_tuple(asio::use_awaitable));
    if (wait_ec) {
      ec = wait_ec;
      co_return;
    }
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
