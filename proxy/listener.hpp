#pragma once
// Accepts clients on TCP (listen.address) and on a Unix socket (<unix_socket_dir>/.s.PGSQL.<port>,
// the name psql -h <dir> looks for) and hands each to a ClientSession, after the client limit.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <optional>
#include <string>

#include "proxy/proxy_service.hpp"

namespace pgvigil::proxy {

class Listener {
 public:
  Listener(boost::asio::io_context& context, ProxyService& service);
  ~Listener();

  // Binds and starts accepting. Throws std::system_error naming the address on failure.
  void start();
  // Stops accepting and removes the Unix socket file. Call on the listener's io_context.
  void stop();
  std::uint16_t tcp_port() const { return tcp_port_; }

 private:
  template <typename Acceptor>
  boost::asio::awaitable<void> accept_loop(Acceptor& acceptor, bool tcp);
  void admit(int fd);

  boost::asio::io_context& context_;
  ProxyService& service_;
  std::optional<boost::asio::ip::tcp::acceptor> tcp_;
  std::optional<boost::asio::local::stream_protocol::acceptor> unix_;
  std::string unix_path_;
  std::uint16_t tcp_port_ = 0;
};

}  // namespace pgvigil::proxy
