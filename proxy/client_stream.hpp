#pragma once
// A client's socket (TCP or Unix: both are plain descriptors to us). Reads and writes try the
// non-blocking system call first and only then wait on the event loop (a read right after a
// complete request waits at once: pool/turn_reader.hpp). Owns the descriptor.

#include "pool/turn_reader.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/system/error_code.hpp>
#include <span>
#include <string>

namespace pgvigil::proxy {

class ClientStream {
 public:
  // The concrete io_context executor, not any_io_executor: it is 8 bytes instead of 56 in the
  // descriptor and in every pending operation, which matters for 10,000 idle clients.
  using Executor = boost::asio::io_context::executor_type;
  ClientStream(Executor executor, int fd);

  // At least one byte, or 0 with ec set (eof, reset, operation_aborted when cancelled).
  boost::asio::awaitable<std::size_t> read_some(std::span<char> buffer,
                                                boost::system::error_code& ec);
  boost::asio::awaitable<void> write_all(std::span<const char> bytes,
                                         boost::system::error_code& ec);
  boost::asio::awaitable<void> write_all(const std::string& bytes,
                                         boost::system::error_code& ec) {
    return write_all(std::span<const char>(bytes.data(), bytes.size()), ec);
  }

  // Callback forms for the relay's hot path (no coroutine frame per operation).
  // handler(error_code, std::size_t). Tries the socket at once and waits when it has nothing,
  // except after a read that turn_ended claimed drained (pool/turn_reader.hpp): then it waits.
  template <typename Rule, typename Handler>
  void async_read_some(std::span<char> buffer, Rule turn_ended, Handler&& handler) {
    reader_.async_read(descriptor_, buffer, /*try_first=*/false, std::move(turn_ended),
                       std::forward<Handler>(handler));
  }
  // The client closed its end (a FIN waits on the socket) or the socket failed. One peek.
  bool peer_closed();
  // One non-blocking send: what was written (maybe less than asked, maybe 0 when the socket
  // buffer is full); ec set on a real error.
  std::size_t try_write(std::span<const char> bytes, boost::system::error_code& ec);

  // Calls handler(error_code) once the client sent something (or closed). A plain handler, not
  // a coroutine, so that an idle client holds no coroutine frame.
  template <typename Handler>
  void async_wait_readable(Handler&& handler) {
    descriptor_.async_wait(boost::asio::posix::descriptor_base::wait_read,
                           std::forward<Handler>(handler));
  }

  void cancel();
  // Gives up the descriptor (for a session moving to another worker); the stream is closed.
  int release();
  void close();
  bool is_open() const { return descriptor_.is_open(); }
  int native_handle() { return descriptor_.native_handle(); }
  Executor get_executor() { return descriptor_.get_executor(); }

 private:
  boost::asio::posix::basic_stream_descriptor<Executor> descriptor_;
  pool::TurnReader reader_;
};

}  // namespace pgvigil::proxy
