#include "proxy/listener.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <system_error>

#include "proxy/client_error.hpp"
#include "proxy/client_session.hpp"

namespace pgvigil::proxy {
namespace asio = boost::asio;

Listener::Listener(asio::io_context& context, ProxyService& service)
    : context_(context), service_(service) {}

Listener::~Listener() {
  if (!unix_path_.empty()) ::unlink(unix_path_.c_str());
}

void Listener::start() {
  const auto& listen = service_.settings().listen;
  if (!listen.host.empty()) {
    std::string host = listen.host;
    if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
    const asio::ip::tcp::endpoint endpoint(asio::ip::make_address(host), listen.port);
    const auto where = listen.host + ":" + std::to_string(listen.port);
    try {
      tcp_.emplace(context_);
      tcp_->open(endpoint.protocol());
      tcp_->set_option(asio::socket_base::reuse_address(true));
      tcp_->bind(endpoint);
      tcp_->listen(asio::socket_base::max_listen_connections);
    } catch (const boost::system::system_error& error) {
      throw std::system_error(error.code().value(), std::generic_category(),
                              "cannot listen for clients on " + where);
    }
    tcp_port_ = tcp_->local_endpoint().port();
    asio::co_spawn(context_, accept_loop(*tcp_, true), asio::detached);
  }
  if (!listen.unix_socket_dir.empty()) {
    unix_path_ = listen.unix_socket_dir + "/.s.PGSQL." + std::to_string(listen.port);
    // A socket file left by a crashed run would make bind fail; nobody listens on it any more
    // (connect would tell), and the directory is ours.
    ::unlink(unix_path_.c_str());
    try {
      unix_.emplace(context_, asio::local::stream_protocol::endpoint(unix_path_));
    } catch (const boost::system::system_error& error) {
      throw std::system_error(error.code().value(), std::generic_category(),
                              "cannot listen for clients on " + unix_path_);
    }
    ::chmod(unix_path_.c_str(), 0777);  // like PostgreSQL's unix_socket_permissions default
    asio::co_spawn(context_, accept_loop(*unix_, false), asio::detached);
  }
}

void Listener::stop() {
  boost::system::error_code ignored;
  if (tcp_) tcp_->close(ignored);
  if (unix_) unix_->close(ignored);
  if (!unix_path_.empty()) ::unlink(unix_path_.c_str());
  unix_path_.clear();
}

template <typename Acceptor>
asio::awaitable<void> Listener::accept_loop(Acceptor& acceptor, bool tcp) {
  while (acceptor.is_open()) {
    auto [ec, socket] = co_await acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
    if (ec == asio::error::operation_aborted) co_return;
    if (ec) {
      // EMFILE and friends: log (rarely) and keep serving those already connected.
      spdlog::warn("accepting a client failed: {}", ec.message());
      continue;
    }
    if (tcp) {
      const int on = 1;
      ::setsockopt(socket.native_handle(), IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    }
    admit(socket.release());
  }
}

void Listener::admit(int fd) {
  if (!service_.room_for_client()) {
    // The refusal is tiny: a best-effort non-blocking send, then close.
    const auto refusal = fatal_error_bytes(
        {sqlstate::kTooManyConnections,
         "too many client connections: listen.max_client_connections is " +
             std::to_string(service_.settings().max_client_connections),
         "", ""});
    [[maybe_unused]] auto sent = ::send(fd, refusal.data(), refusal.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    ::close(fd);
    service_.count_startup_error(sqlstate::kTooManyConnections);
    return;
  }
  ClientSession::start(service_, context_.get_executor(), fd);
}

}  // namespace pgvigil::proxy
