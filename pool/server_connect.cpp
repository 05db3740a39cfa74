// ServerConnection::connect: resolve the host off the event loop, then drive libpq's
// non-blocking connect state machine, waiting on whichever socket it has at each step.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "pool/connection_parameters.hpp"
#include "pool/server_connection.hpp"

namespace pgvigil::pool {
namespace asio = boost::asio;
using asio::awaitable;

namespace {

std::string peer_address(int fd) {
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) return {};
  char text[INET6_ADDRSTRLEN] = {};
  if (address.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&address);
    inet_ntop(AF_INET, &v4->sin_addr, text, sizeof text);
    return std::string(text) + ":" + std::to_string(ntohs(v4->sin_port));
  }
  if (address.ss_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&address);
    inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof text);
    return "[" + std::string(text) + "]:" + std::to_string(ntohs(v6->sin6_port));
  }
  return {};
}

}  // namespace

awaitable<std::optional<ConnectFailure>> ServerConnection::resolve(Clock::time_point deadline,
                                                                   std::string& address) {
  const auto& server = host_;
  if (server.is_unix_socket()) co_return std::nullopt;
  boost::system::error_code ec;
  asio::ip::make_address(server.host, ec);
  if (!ec) {
    address = server.host;
    co_return std::nullopt;
  }
  // Asio resolves on a private thread, so getaddrinfo never blocks the event loop. It cannot
  // interrupt a getaddrinfo already running: the deadline is checked when it returns.
  auto resolver = std::make_shared<asio::ip::tcp::resolver>(executor_);
  const auto port = std::to_string(server.port);  // named: see ask_role
  auto [resolve_ec, results] =
      co_await resolver->async_resolve(server.host, port, asio::as_tuple(asio::use_awaitable));
  if (resolve_ec) {
    co_return ConnectFailure{
        ConnectFailureCause::name_resolution,
        "could not resolve host \"" + server.host + "\": " + resolve_ec.message()};
  }
  if (Clock::now() > deadline) {
    co_return ConnectFailure{ConnectFailureCause::timeout,
                             "name resolution of \"" + server.host + "\" took too long"};
  }
  address = results.begin()->endpoint().address().to_string();
  co_return std::nullopt;
}

awaitable<std::optional<ConnectFailure>> ServerConnection::connect(const ServerHost& host,
                                                                   Clock::time_point deadline) {
  close();  // what an earlier attempt (another host) left
  // The attempt's own bound: pool.connect_timeout, or less (a health probe's ping.timeout).
  const auto allowed = std::chrono::round<std::chrono::milliseconds>(deadline - Clock::now());
  // libpq, unless the endpoint logs in with a credential only pgvigil's own link can use.
  const auto& credential = config_->server.login;
  link_ = credential ? credential.login->make_link() : std::make_unique<LibpqLink>();
  host_ = host;
  host_picked_ = true;
  server_address_ = host_.describe();
  role_ = {};
  role_changed_ = false;
  role_reported_ = false;
  std::string address;
  if (auto failure = co_await resolve(deadline, address)) co_return failure;

  const auto failure_from_link = [this] {
    auto message = link_->error_message();
    return ConnectFailure{classify_connect_failure(message), message};
  };
  if (!link_->start_connect(connection_parameters(*config_, host_, address))) {
    co_return failure_from_link();
  }
  // Each poll says which direction to wait for next, and the socket may change between polls
  // (several addresses), so wait_ready() takes up whatever socket libpq has now.
  auto poll = ServerLink::Poll::write;
  while (poll != ServerLink::Poll::ok) {
    if (poll == ServerLink::Poll::failed) co_return failure_from_link();
    const auto ready = poll == ServerLink::Poll::read ? Ready::read : Ready::write;
    const auto result = co_await wait_ready(ready, deadline);
    if (result == WaitResult::timed_out) {
      co_return ConnectFailure{ConnectFailureCause::timeout,
                               "connect to " + server_address_ + " timed out after " +
                                   std::to_string(allowed.count()) + " ms"};
    }
    if (result == WaitResult::aborted) {
      co_return ConnectFailure{ConnectFailureCause::other, "connect aborted"};
    }
    // PQconnectPoll may close this socket and open another (next address): release it first.
    stream_.release();
    poll = link_->poll_connect();
  }
  if (!link_->finish_connect()) {
    co_return ConnectFailure{ConnectFailureCause::other,
                             "PQsetnonblocking: " + link_->error_message()};
  }
  backend_pid_ = link_->backend_pid();
  // Registered from now on until close(): the relay and the idle watcher use it.
  if (!track_socket()) {
    co_return ConnectFailure{ConnectFailureCause::other, "the event loop refused the socket"};
  }
  // For the lending check (quick_check), once the socket is final: libpq may replace it while
  // connecting. Without it every check peeks, so a refusal is not fatal.
  stream_.report_peer_close();
  if (is_tcp()) {
    if (auto peer = peer_address(socket()); !peer.empty()) server_address_ = peer;
  }
  mark_alive();
  co_return std::nullopt;
}

bool ServerConnection::take_reported_role() {
  const auto reported =
      role_from_parameters(link_->parameter_status("in_hot_standby"),
                           link_->parameter_status("default_transaction_read_only"));
  if (reported) role_ = *reported;
  role_reported_ = reported.has_value();
  return role_reported_;
}

awaitable<std::optional<ConnectFailure>> ServerConnection::ask_role(Clock::time_point deadline) {
  // Before PostgreSQL 14 the role is not reported: one round trip, as libpq does.
  // A named string: GCC 12 mishandles a temporary with a destructor inside co_await.
  const std::string query = kRoleQuery;
  const auto answer = co_await query_value(query, deadline);
  if (answer.error) {
    co_return ConnectFailure{
        answer.error->death ? ConnectFailureCause::network : ConnectFailureCause::other,
        "asking the server's role: " + answer.error->message, answer.error->death};
  }
  const auto report = role_from_query_value(answer.value.value_or(""));
  if (!report) {
    co_return ConnectFailure{ConnectFailureCause::other, "the server's role query answered \"" +
                                                             answer.value.value_or("") + "\""};
  }
  role_ = *report;
  co_return std::nullopt;
}

}  // namespace pgvigil::pool
