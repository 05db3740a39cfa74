// ServerConnection: lifecycle, waits, and the checks of an idle connection.
#include "pool/server_connection.hpp"

#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "probes/tcp_info.hpp"

namespace pgvigil::pool {
namespace asio = boost::asio;
using asio::awaitable;

ServerConnection::ServerConnection(stream::Executor executor,
                                   std::shared_ptr<const PoolConfig> config, std::uint64_t id)
    : executor_(executor),
      config_(std::move(config)),
      id_(id),
      link_(std::make_unique<LibpqLink>()),
      stream_(executor),
      timer_(executor),
      host_(config_->server.hosts.front()),
      server_address_(host_.describe()) {}

ServerConnection::~ServerConnection() { close(); }

bool ServerConnection::track_socket() {
  const int fd = link_->socket();
  if (fd < 0) {
    stream_.release();
    return false;
  }
  if (stream_.native_handle() == fd) return true;
  return stream_.attach(fd, stream::Ownership::borrowed, link_->tls());
}

awaitable<ServerConnection::WaitResult> ServerConnection::wait_ready(Ready ready,
                                                                     Clock::time_point deadline) {
  if (!track_socket()) co_return WaitResult::aborted;
  // No readiness check first: Asio re-arms the edge-triggered registration (EPOLL_CTL_MOD) when
  // a wait starts, so bytes or a close that arrived while nobody waited are reported at once.
  if (Clock::now() >= deadline) co_return WaitResult::timed_out;
  timer_.expires_at(deadline);
  auto [order, wait_ec, timer_ec] =
      co_await asio::experimental::make_parallel_group(stream_.async_wait(ready, asio::deferred),
                                                       timer_.async_wait(asio::deferred))
          .async_wait(asio::experimental::wait_for_one(), asio::use_awaitable);
  if (order[0] == 0) co_return wait_ec ? WaitResult::aborted : WaitResult::ready;
  co_return timer_ec ? WaitResult::aborted : WaitResult::timed_out;
}

Death ServerConnection::diagnose_failure(bool data_in_flight, const std::string& context) {
  FailureEvidence evidence;
  evidence.context = context;
  evidence.data_in_flight = data_in_flight;
  const int fd = socket();
  // TCP_INFO first: it survives the kernel's teardown, and taking the socket error does not.
  if (fd >= 0 && is_tcp()) evidence.tcp = probes::read_tcp_info(fd);
  evidence.pending_error = fd >= 0 ? probes::take_socket_error(fd) : 0;
  evidence.libpq_message = link_->error_message();
  evidence.server_fatal = link_->server_fatal();
  evidence.keepalive = config_->keepalive;
  evidence.now = Clock::now();
  evidence.created_at = created_at_;
  evidence.last_alive = last_alive_;
  return diagnose(evidence);
}

std::optional<Death> ServerConnection::absorb_idle_input() {
  if (!link_->open()) {
    return Death{EvictionReason::server_closed, "no connection", last_alive_};
  }
  const bool read = link_->consume_input();
  track_socket();
  if (!read) return diagnose_failure(false, "reading from idle connection");
  mark_alive();
  // Nothing may be queued on an idle connection; anything that is, is drained and dropped. This
  // also parses what was read (PQconsumeInput only reads): a message announcing the close (a
  // FATAL, or an immediate shutdown's WARNING: announces_close) reaches server_fatal(), and a
  // ParameterStatus the parameters, only now. Before, such a message whose FIN had not come yet
  // went unseen and the connection was lent
  // (PoolPgTest.AConnectionKilledWhileLentIsNotHandedToAWaitingClient).
  link_->discard_results();
  if (const auto& fatal = link_->server_fatal()) {
    return Death{EvictionReason::server_error, *fatal, Clock::now()};
  }
  // A promotion reports in_hot_standby off to every session of the old standby.
  note_hot_standby_report(link_->parameter_status("in_hot_standby"));
  if (role_changed_) return role_change_death();
  return std::nullopt;
}

std::optional<Death> ServerConnection::quick_check(bool thorough) {
  if (!track_socket()) return Death{EvictionReason::server_closed, "socket closed", last_alive_};
  if (thorough && is_tcp()) {
    auto snapshot = probes::read_tcp_info(socket());
    if (snapshot && !snapshot->established) {
      return diagnose_failure(false, "kernel says the connection is no longer established");
    }
  }
  // Also checks a drain claim of the last relay read: no FIN hides behind it now. A connection
  // lent a moment ago is answered from the event loop's knowledge when it can (no system call);
  // one idle past validate_after_idle is looked at.
  switch (thorough ? stream_.peek() : stream_.look()) {
    case stream::SocketStream::Peek::nothing:
      return std::nullopt;
    case stream::SocketStream::Peek::closed:
      return Death{EvictionReason::server_closed, "server closed the connection", Clock::now()};
    case stream::SocketStream::Peek::data:
      return absorb_idle_input();
    case stream::SocketStream::Peek::failed:
      break;
  }
  return diagnose_failure(false, "checking socket");
}

void ServerConnection::note_hot_standby_report(std::string_view value) {
  if (!role_reported_ || role_.role == ServerRole::unknown) return;
  const auto reported = role_from_hot_standby(value);
  if (reported && *reported != role_.role) role_changed_ = true;
}

Death ServerConnection::role_change_death() const {
  const auto now_role = reported_role();
  return Death{EvictionReason::role_changed,
               "server " + server_address_ + " was a " + std::string(to_string(role_.role)) +
                   " and reports itself a " + std::string(to_string(now_role)),
               Clock::now()};
}

void ServerConnection::detach() {
  timer_.cancel();
  stream_.cancel();
}

void ServerConnection::close() {
  timer_.cancel();
  stream_.release();  // before PQfinish closes the descriptor
  link_->finish();
}

PGconn* ServerConnection::native_handle() const {
  const auto* libpq = dynamic_cast<const LibpqLink*>(link_.get());
  return libpq != nullptr ? libpq->native_handle() : nullptr;
}

std::optional<probes::TcpSnapshot> ServerConnection::tcp_snapshot() const {
  const int fd = socket();
  if (fd < 0 || !is_tcp()) return std::nullopt;
  return probes::read_tcp_info(fd);
}

}  // namespace pgvigil::pool
