#include "pool/server_connection.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "pool/connection_parameters.hpp"
#include "probes/tcp_info.hpp"

namespace pgvigil::pool {
namespace asio = boost::asio;
using asio::awaitable;

namespace {

// libpq's messages end in a newline and may span lines; a log line wants one line.
std::string one_line(const char* text) {
  std::string line = text ? text : "";
  while (!line.empty() && (line.back() == '\n' || line.back() == ' ')) line.pop_back();
  for (auto& c : line) {
    if (c == '\n') c = ' ';
  }
  return line;
}

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

bool mentions_timeout(const std::string& text) {
  return text.find("timed out") != std::string::npos;
}

}  // namespace

ServerConnection::ServerConnection(asio::any_io_executor executor,
                                   std::shared_ptr<const PoolConfig> config, std::uint64_t id)
    : executor_(executor),
      config_(std::move(config)),
      id_(id),
      descriptor_(executor),
      reader_(asio::query(executor, asio::execution::context)),
      timer_(executor) {
  const auto& server = config_->server;
  server_address_ = server.is_unix_socket()
                        ? server.host + "/.s.PGSQL." + std::to_string(server.port)
                        : server.host + ":" + std::to_string(server.port);
}

ServerConnection::~ServerConnection() { close(); }

bool ServerConnection::register_descriptor() {
  const int fd = conn_ ? PQsocket(conn_) : -1;
  if (fd < 0) return false;
  if (descriptor_.is_open()) {
    if (descriptor_.native_handle() == fd) return true;
    descriptor_.release();
  }
  boost::system::error_code ec;
  descriptor_.assign(fd, ec);
  return !ec;
}

void ServerConnection::unregister_descriptor() {
  // release() hands the descriptor back without closing it: libpq owns it.
  if (descriptor_.is_open()) descriptor_.release();
}

awaitable<ServerConnection::WaitResult> ServerConnection::wait(Direction direction,
                                                              Clock::time_point deadline) {
  if (!register_descriptor()) co_return WaitResult::aborted;
  // No readiness check first: Asio re-arms the edge-triggered registration (EPOLL_CTL_MOD) when
  // a wait starts, so bytes or a close that arrived while nobody waited are reported at once.
  if (Clock::now() >= deadline) co_return WaitResult::timed_out;
  timer_.expires_at(deadline);
  const auto kind = direction == Direction::read ? asio::posix::descriptor_base::wait_read
                                                 : asio::posix::descriptor_base::wait_write;
  auto [order, wait_ec, timer_ec] =
      co_await asio::experimental::make_parallel_group(descriptor_.async_wait(kind, asio::deferred),
                                                       timer_.async_wait(asio::deferred))
          .async_wait(asio::experimental::wait_for_one(), asio::use_awaitable);
  if (order[0] == 0) co_return wait_ec ? WaitResult::aborted : WaitResult::ready;
  co_return timer_ec ? WaitResult::aborted : WaitResult::timed_out;
}

awaitable<ServerConnection::WaitResult> ServerConnection::wait_io(Direction direction) {
  if (!register_descriptor()) co_return WaitResult::aborted;
  const auto kind = direction == Direction::read ? asio::posix::descriptor_base::wait_read
                                                 : asio::posix::descriptor_base::wait_write;
  auto [ec] = co_await descriptor_.async_wait(kind, asio::as_tuple(asio::use_awaitable));
  co_return ec ? WaitResult::aborted : WaitResult::ready;
}

awaitable<std::optional<ConnectFailure>> ServerConnection::resolve(Clock::time_point deadline,
                                                                   std::string& address) {
  const auto& server = config_->server;
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
  auto [resolve_ec, results] = co_await resolver->async_resolve(
      server.host, std::to_string(server.port), asio::as_tuple(asio::use_awaitable));
  if (resolve_ec) {
    co_return ConnectFailure{ConnectFailureCause::name_resolution,
                             "could not resolve host \"" + server.host + "\": " +
                                 resolve_ec.message()};
  }
  if (Clock::now() > deadline) {
    co_return ConnectFailure{ConnectFailureCause::timeout,
                             "name resolution of \"" + server.host + "\" took too long"};
  }
  address = results.begin()->endpoint().address().to_string();
  co_return std::nullopt;
}

awaitable<std::optional<ConnectFailure>> ServerConnection::connect(Clock::time_point deadline) {
  std::string address;
  if (auto failure = co_await resolve(deadline, address)) co_return failure;

  const auto params = connection_parameters(*config_, address);
  std::vector<const char*> keys;
  std::vector<const char*> values;
  for (const auto& [key, value] : params) {
    keys.push_back(key.c_str());
    values.push_back(value.c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);

  const auto failure_from_libpq = [this] {
    auto message = one_line(PQerrorMessage(conn_));
    return ConnectFailure{classify_connect_failure(message), message};
  };
  conn_ = PQconnectStartParams(keys.data(), values.data(), 0);
  if (conn_ == nullptr) {
    co_return ConnectFailure{ConnectFailureCause::other, "PQconnectStartParams: out of memory"};
  }
  if (PQstatus(conn_) == CONNECTION_BAD) co_return failure_from_libpq();

  // The libpq connect state machine: each poll says which direction to wait for next, and the
  // socket may change between polls (several addresses), so wait() re-reads PQsocket each time.
  auto poll = PGRES_POLLING_WRITING;
  while (poll != PGRES_POLLING_OK) {
    if (poll == PGRES_POLLING_FAILED) co_return failure_from_libpq();
    const auto direction = poll == PGRES_POLLING_READING ? Direction::read : Direction::write;
    const auto result = co_await wait(direction, deadline);
    if (result == WaitResult::timed_out) {
      co_return ConnectFailure{ConnectFailureCause::timeout,
                               "connect to " + server_address_ + " timed out after " +
                                   std::to_string(config_->pool.connect_timeout.count()) + " ms"};
    }
    if (result == WaitResult::aborted) {
      co_return ConnectFailure{ConnectFailureCause::other, "connect aborted"};
    }
    // PQconnectPoll may close this socket and open another (next address): unregister first.
    unregister_descriptor();
    poll = PQconnectPoll(conn_);
  }
  if (PQsetnonblocking(conn_, 1) != 0) {
    co_return ConnectFailure{ConnectFailureCause::other,
                             "PQsetnonblocking: " + one_line(PQerrorMessage(conn_))};
  }
  PQsetNoticeReceiver(conn_, &ServerConnection::on_notice, this);
  backend_pid_ = PQbackendPID(conn_);
  tls_ = static_cast<SSL*>(PQsslStruct(conn_, "OpenSSL"));  // looked up once: the relay asks often
  if (is_tcp()) {
    if (auto peer = peer_address(PQsocket(conn_)); !peer.empty()) server_address_ = peer;
  }
  mark_alive();
  co_return std::nullopt;
}

void ServerConnection::on_notice(void* self, const PGresult* result) {
  // An ERROR or FATAL on an idle connection reaches libpq's notice path; a FATAL is the server
  // telling us why it is about to close (pg_terminate_backend, shutdown), which we keep.
  const char* severity = PQresultErrorField(result, PG_DIAG_SEVERITY_NONLOCALIZED);
  if (severity == nullptr) return;
  const std::string_view level = severity;
  if (level != "FATAL" && level != "PANIC") return;
  const char* code = PQresultErrorField(result, PG_DIAG_SQLSTATE);
  const char* message = PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY);
  static_cast<ServerConnection*>(self)->server_fatal_ =
      std::string(severity) + " " + (code ? code : "") + ": " + (message ? message : "");
}

Clock::time_point ServerConnection::last_kernel_ack() const {
  const auto now = Clock::now();
  auto snapshot = tcp_snapshot();
  if (!snapshot) return last_alive_;
  const auto ack = now - snapshot->since_last_ack_received;
  // A socket that never saw an ACK reports a meaningless age; keep what we know then.
  return ack > created_at_ ? std::max(ack, last_alive_) : last_alive_;
}

Death ServerConnection::diagnose_failure(bool data_in_flight, const std::string& context) {
  const int fd = socket();
  // TCP_INFO first: it survives the kernel's teardown, and it says which timer ended the
  // connection. The relay's own recv() has usually consumed the socket error (ETIMEDOUT) already,
  // so SO_ERROR alone cannot tell a timeout from an ordinary close.
  std::optional<tcp_info> info;
  if (fd >= 0 && is_tcp()) {
    tcp_info raw{};
    socklen_t length = sizeof raw;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &raw, &length) == 0) info = raw;
  }
  const int pending = fd >= 0 ? probes::take_socket_error(fd) : 0;
  std::string cause = pending != 0 ? std::strerror(pending) : one_line(PQerrorMessage(conn_));
  // Which timer gave up, read from the counters the kernel leaves on a closed socket (measured
  // on Linux 6.18): keep-alive death leaves tcpi_probes > 0 and tcpi_retransmits == 0; a
  // TCP_USER_TIMEOUT (or retransmission) death leaves tcpi_retransmits > 0 and tcpi_probes == 0
  // (keep-alive sends no probes while data is unacknowledged). tcpi_unacked and tcpi_backoff
  // are zeroed by the teardown (tcp_write_queue_purge) and so say nothing.
  bool kernel_timeout = pending == ETIMEDOUT || mentions_timeout(cause);
  std::optional<EvictionReason> timer;
  if (info && info->tcpi_state == TCP_CLOSE) {
    const auto& keepalive = config_->keepalive;
    const auto silence = std::chrono::milliseconds(info->tcpi_last_ack_recv);
    auto shortest = keepalive.idle_detection_bound();
    if (keepalive.user_timeout.count() > 0) shortest = std::min(shortest, keepalive.user_timeout);
    // A reset can also close the socket after a retransmission; only a silence as long as the
    // shortest timer (less a little for the kernel's jiffies) makes it a timeout.
    const bool silent_long_enough = silence + std::chrono::milliseconds(100) >= shortest;
    if (info->tcpi_probes > 0 && info->tcpi_retransmits == 0 && silent_long_enough) {
      timer = EvictionReason::keepalive_timeout;
    } else if (info->tcpi_retransmits > 0 && info->tcpi_probes == 0 && silent_long_enough) {
      timer = EvictionReason::user_timeout;
    }
    if (timer || kernel_timeout) {
      kernel_timeout = true;
      if (pending == 0 && !mentions_timeout(cause)) cause = "connection timed out";
      cause += " (kernel: " + std::to_string(info->tcpi_probes) + " keep-alive probes, " +
               std::to_string(info->tcpi_retransmits) + " retransmissions, nothing heard for " +
               std::to_string(silence.count()) + " ms)";
    }
  }
  const std::string detail = context + ": " + cause;
  if (kernel_timeout) {
    const auto reason = timer.value_or(data_in_flight ? EvictionReason::user_timeout
                                                      : EvictionReason::keepalive_timeout);
    return {reason, detail, last_kernel_ack()};
  }
  // The server's own words come first: a FATAL just before the close explains it.
  if (server_fatal_) return {EvictionReason::server_error, *server_fatal_, Clock::now()};
  return {EvictionReason::server_closed, detail, Clock::now()};
}

std::optional<Death> ServerConnection::absorb_idle_input() {
  if (conn_ == nullptr) return Death{EvictionReason::server_closed, "no connection", last_alive_};
  if (PQconsumeInput(conn_) == 0 || PQstatus(conn_) == CONNECTION_BAD) {
    return diagnose_failure(false, "reading from idle connection");
  }
  mark_alive();
  if (server_fatal_) return Death{EvictionReason::server_error, *server_fatal_, Clock::now()};
  // Nothing may be queued on an idle connection; anything that is, is drained and dropped.
  while (PQisBusy(conn_) == 0) {
    PGresult* stray = PQgetResult(conn_);
    if (stray == nullptr) break;
    PQclear(stray);
  }
  return std::nullopt;
}

std::optional<Death> ServerConnection::quick_check(bool thorough) {
  const int fd = socket();
  if (fd < 0) return Death{EvictionReason::server_closed, "socket closed", last_alive_};
  if (thorough && is_tcp()) {
    auto snapshot = probes::read_tcp_info(fd);
    if (snapshot && !snapshot->established) {
      return diagnose_failure(false, "kernel says the connection is no longer established");
    }
  }
  char byte;
  const auto peeked = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (peeked == 0) return Death{EvictionReason::server_closed, "server closed the connection",
                                Clock::now()};
  if (peeked > 0) return absorb_idle_input();
  if (errno != EAGAIN && errno != EWOULDBLOCK) return diagnose_failure(false, "checking socket");
  drain_claim_unchecked_ = false;  // checked: no bytes and no FIN wait on the socket
  return std::nullopt;
}

awaitable<std::optional<Death>> ServerConnection::flush(Clock::time_point deadline) {
  while (true) {
    const int result = PQflush(conn_);
    if (result == 0) co_return std::nullopt;
    if (result < 0) co_return diagnose_failure(true, "sending to server");
    if (co_await wait(Direction::write, deadline) != WaitResult::ready) {
      co_return Death{EvictionReason::ping_timeout, "could not send the ping in time",
                      last_alive_};
    }
  }
}

awaitable<std::optional<Death>> ServerConnection::run_statement(const std::string& sql,
                                                                Clock::time_point deadline,
                                                                const ResultVisitor& on_result) {
  const auto started = Clock::now();
  if (PQsendQuery(conn_, sql.c_str()) == 0) co_return diagnose_failure(false, "sending");
  if (auto death = co_await flush(deadline)) co_return death;
  while (true) {
    const auto result = co_await wait(Direction::read, deadline);
    if (result == WaitResult::timed_out) {
      const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - started);
      co_return Death{EvictionReason::ping_timeout,
                      "no answer within " + std::to_string(waited.count()) + " ms", last_alive_};
    }
    if (result == WaitResult::aborted) {
      co_return Death{EvictionReason::ping_failed, "interrupted", last_alive_};
    }
    if (PQconsumeInput(conn_) == 0) co_return diagnose_failure(true, "reading the answer");
    mark_alive();
    // Every result up to ReadyForQuery (PQgetResult returning null) is read, so libpq and the
    // server are at a message boundary afterwards.
    while (PQisBusy(conn_) == 0) {
      std::unique_ptr<PGresult, decltype(&PQclear)> result(PQgetResult(conn_), &PQclear);
      if (!result) co_return std::nullopt;
      if (PQstatus(conn_) == CONNECTION_BAD) co_return diagnose_failure(true, "statement");
      if (auto death = on_result(result.get())) co_return death;
    }
  }
}

const ServerConnection::Settings& ServerConnection::applied_settings() const {
  static const Settings none;
  return applied_settings_ ? *applied_settings_ : none;
}

bool ServerConnection::carries(const std::shared_ptr<const Settings>& wanted) {
  if (applied_settings_ == wanted) return true;
  if (applied_settings() != *wanted) return false;
  applied_settings_ = wanted;  // the same values: next time the pointers match
  return true;
}

std::string ServerConnection::parameter_status(const char* name) const {
  const char* value = conn_ ? PQparameterStatus(conn_, name) : nullptr;
  return value ? value : "";
}

awaitable<std::variant<Clock::duration, Death>> ServerConnection::ping(
    const std::string& query, Clock::time_point deadline) {
  const auto started = Clock::now();
  // The first failure of the ping is kept; the rest of its results are still drained.
  std::optional<Death> failure;
  const ResultVisitor judge = [&failure](const PGresult* result) -> std::optional<Death> {
    if (failure) return std::nullopt;
    const auto status = PQresultStatus(result);
    if (status == PGRES_TUPLES_OK && PQntuples(result) > 0 && PQnfields(result) > 0) {
      // A ping query whose first value is false (SELECT NOT pg_is_in_recovery() on a demoted
      // primary) says the server works but is not what we want.
      const std::string_view value = PQgetvalue(result, 0, 0);
      if (value == "f" || value == "false") {
        failure = Death{EvictionReason::ping_failed, "ping query returned false", Clock::now()};
      }
    } else if (status == PGRES_FATAL_ERROR) {
      const char* code = PQresultErrorField(result, PG_DIAG_SQLSTATE);
      failure = Death{EvictionReason::ping_failed,
                      std::string("ping answered with ") + (code ? code : "an error") + ": " +
                          one_line(PQresultErrorMessage(result)),
                      Clock::now()};
    }
    return std::nullopt;
  };
  if (auto death = co_await run_statement(query, deadline, judge)) co_return *death;
  if (failure) co_return *failure;
  co_return Clock::now() - started;
}

awaitable<std::optional<ServerConnection::StatementError>> ServerConnection::execute(
    const std::string& sql, Clock::time_point deadline) {
  std::optional<StatementError> error;
  const ResultVisitor record = [&error](const PGresult* result) -> std::optional<Death> {
    if (!error && PQresultStatus(result) == PGRES_FATAL_ERROR) {
      const char* code = PQresultErrorField(result, PG_DIAG_SQLSTATE);
      const char* message = PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY);
      error = StatementError{code ? code : "XX000", message ? message : "error", std::nullopt};
    }
    return std::nullopt;
  };
  if (auto death = co_await run_statement(sql, deadline, record)) {
    co_return StatementError{"08006", death->detail, *death};
  }
  co_return error;
}

// --- raw relay I/O ---------------------------------------------------------------------------
// A non-blocking read or write is tried first: on a busy relay it usually succeeds, and the
// event loop is only asked to wait when the socket has nothing (or no room).

namespace {

boost::system::error_code last_errno_or(boost::system::error_code fallback) {
  return errno != 0 ? boost::system::error_code(errno, boost::system::system_category())
                    : fallback;
}

}  // namespace

SSL* ServerConnection::tls() const { return tls_; }

std::size_t ServerConnection::try_tls_read(std::span<char> buffer, boost::system::error_code& ec,
                                           bool& needs_write) {
  ec.clear();
  needs_write = false;
  auto* link = tls();
  if (link == nullptr) {
    ec = asio::error::operation_aborted;
    return 0;
  }
  ERR_clear_error();
  errno = 0;
  const int n = SSL_read(link, buffer.data(), static_cast<int>(buffer.size()));
  if (n > 0) return static_cast<std::size_t>(n);
  const int error = SSL_get_error(link, n);
  if (error == SSL_ERROR_ZERO_RETURN) {
    ec = asio::error::eof;
  } else if (error == SSL_ERROR_WANT_WRITE) {
    needs_write = true;
  } else if (error != SSL_ERROR_WANT_READ) {
    ec = last_errno_or(asio::error::connection_reset);
  }
  return 0;
}

std::size_t ServerConnection::try_relay_write(std::span<const char> bytes,
                                              boost::system::error_code& ec, bool& needs_read) {
  ec.clear();
  needs_read = false;
  if (conn_ == nullptr) {
    ec = asio::error::operation_aborted;
    return 0;
  }
  if (auto* link = tls()) {
    ERR_clear_error();
    errno = 0;
    const int n = SSL_write(link, bytes.data(), static_cast<int>(bytes.size()));
    if (n > 0) return static_cast<std::size_t>(n);
    const int error = SSL_get_error(link, n);
    if (error == SSL_ERROR_WANT_READ) {
      needs_read = true;
    } else if (error != SSL_ERROR_WANT_WRITE) {
      ec = last_errno_or(asio::error::connection_reset);
    }
    return 0;
  }
  while (true) {
    const int fd = descriptor_.is_open() ? descriptor_.native_handle() : PQsocket(conn_);
    const auto n = ::send(fd, bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n >= 0) return static_cast<std::size_t>(n);
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) ec = last_errno_or(asio::error::connection_reset);
    return 0;
  }
}

awaitable<void> ServerConnection::write_all(std::span<const char> bytes,
                                            boost::system::error_code& ec) {
  ec.clear();
  while (!bytes.empty()) {
    bool needs_read = false;
    const auto n = try_relay_write(bytes, ec, needs_read);
    if (ec) co_return;
    bytes = bytes.subspan(n);
    if (n > 0) continue;
    if (co_await wait_io(needs_read ? Direction::read : Direction::write) != WaitResult::ready) {
      ec = asio::error::operation_aborted;
      co_return;
    }
  }
}

awaitable<ServerConnection::WaitResult> ServerConnection::wait_readable(
    Clock::time_point deadline) {
  co_return co_await wait(Direction::read, deadline);
}

void ServerConnection::detach() {
  timer_.cancel();
  if (descriptor_.is_open()) descriptor_.cancel();
}

void ServerConnection::close() {
  timer_.cancel();
  unregister_descriptor();
  tls_ = nullptr;
  if (conn_ != nullptr) {
    PQfinish(conn_);
    conn_ = nullptr;
  }
}

std::optional<probes::TcpSnapshot> ServerConnection::tcp_snapshot() const {
  const int fd = socket();
  if (fd < 0 || !is_tcp()) return std::nullopt;
  return probes::read_tcp_info(fd);
}

}  // namespace pgvigil::pool
