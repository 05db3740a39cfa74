#pragma once
// One PostgreSQL server connection. The only code in pgvigil that calls libpq or touches a
// server socket. Not thread-safe: it lives on its pool's executor, and a client session that
// leases it runs on that same executor, so the socket never changes hands between threads.
//
// libpq owns the descriptor. Once connected it stays registered with the event loop until
// close(), which releases it (never closes it) before PQfinish. While connecting, it is
// released before every PQconnectPoll, which may close or replace the socket, so a reused
// descriptor number can never be unregistered by mistake.

#include "pool/turn_reader.hpp"

#include <libpq-fe.h>
#include <openssl/types.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/error_code.hpp>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <variant>

#include "pool/connect_failure.hpp"
#include "pool/connection_state.hpp"
#include "pool/eviction_reason.hpp"
#include "pool/pool_settings.hpp"
#include "probes/tcp_info.hpp"

namespace pgvigil::pool {

using Clock = std::chrono::steady_clock;

struct ConnectFailure {
  ConnectFailureCause cause;
  std::string message;  // libpq's or ours; never contains the password
};

// Why a connection is dead, and when it last showed it was alive.
struct Death {
  EvictionReason reason;
  std::string detail;
  Clock::time_point last_sign_of_life;
};

// The server's turn ends with ReadyForQuery reporting an idle session ('Z', length 5, 'I'): a
// TurnReader rule that records its claim.
struct AnswerEndedIdle {
  bool* claim;
  bool operator()(std::span<const char> bytes) const {
    static constexpr char kReadyIdle[] = {'Z', 0, 0, 0, 5, 'I'};
    if (bytes.size() < sizeof kReadyIdle ||
        !std::equal(std::begin(kReadyIdle), std::end(kReadyIdle),
                    bytes.end() - static_cast<std::ptrdiff_t>(sizeof kReadyIdle))) {
      return false;
    }
    *claim = true;
    return true;
  }
};

class ServerConnection {
 public:
  enum class WaitResult { ready, timed_out, aborted };

  ServerConnection(boost::asio::any_io_executor executor, std::shared_ptr<const PoolConfig> config,
                   std::uint64_t id);
  ~ServerConnection();
  ServerConnection(const ServerConnection&) = delete;
  ServerConnection& operator=(const ServerConnection&) = delete;

  // Resolves the host off the event loop, connects with libpq's non-blocking API and
  // authenticates. nullopt on success.
  boost::asio::awaitable<std::optional<ConnectFailure>> connect(Clock::time_point deadline);

  // Sends the ping (the empty query, or ping.query) and waits for ReadyForQuery. Returns the
  // round-trip time, or why the connection must go.
  boost::asio::awaitable<std::variant<Clock::duration, Death>> ping(const std::string& query,
                                                                    Clock::time_point deadline);

  // Waits until the server sends something (or closes) on an idle connection, or until the
  // deadline. aborted when the connection was detached meanwhile.
  boost::asio::awaitable<WaitResult> wait_readable(Clock::time_point deadline);

  // Reads what arrived on an idle connection. nullopt: nothing wrong (a notice, a parameter
  // change); otherwise the connection is dead (FATAL, EOF, socket error).
  std::optional<Death> absorb_idle_input();

  // A check that costs no round trip: EOF, a reset or a message (a FATAL) waiting on the socket
  // (one peek); thorough adds the kernel's TCP state (one getsockopt).
  std::optional<Death> quick_check(bool thorough);

  // Diagnoses a failed socket. data_in_flight: we were waiting for an answer, so a timeout is
  // TCP_USER_TIMEOUT rather than keep-alive.
  Death diagnose_failure(bool data_in_flight, const std::string& context);

  // Ends the pool's wait on an idle connection (it is being lent). Safe when nothing waits.
  void detach();

  // --- raw protocol I/O for a lease holder (the relay). The server must be at a message
  // boundary when the lease ends, and at ReadyForQuery if libpq is to use it again.

  // Writes all of `bytes` (through TLS when the link is TLS), waiting while the socket buffer
  // is full. The relay's slow path, when one attempt did not take everything.
  boost::asio::awaitable<void> write_all(std::span<const char> bytes,
                                         boost::system::error_code& ec);

  // The relay's hot path is callbacks, not coroutines (no frame per operation).
  // Reads what the server sent: handler(error_code, std::size_t). Tries the socket at once
  // (over TLS, SSL_read first), unless the last read ended the server's answer and the socket
  // was checked since (turn_reader.hpp); waits when it has nothing.
  template <typename Handler>
  void async_relay_read(std::span<char> buffer, Handler&& handler);
  // One non-blocking write attempt: the bytes written (0 when the socket buffer is full); ec set
  // on a real error. needs_read: TLS must read before it can write (renegotiation).
  std::size_t try_relay_write(std::span<const char> bytes, boost::system::error_code& ec,
                              bool& needs_read);
  // handler(error_code) once the socket is readable (for_read) or writable.
  template <typename Handler>
  void async_wait_ready(bool for_read, Handler&& handler);

  // Runs statements of pgvigil's own (SET for a client's settings, the reset query, ROLLBACK)
  // through libpq; their results never reach a client. nullopt on success, else why it failed:
  // a server error (the connection is still usable) or a death.
  struct StatementError {
    std::string sqlstate;
    std::string message;
    std::optional<Death> death;  // set when the connection is gone
  };
  boost::asio::awaitable<std::optional<StatementError>> execute(const std::string& sql,
                                                                Clock::time_point deadline);

  // A handle that can cancel whatever the backend runs now (PQcancel blocks: call it off the
  // event loop). The caller frees it with PQfreeCancel.
  PGcancel* cancel_handle() const { return conn_ ? PQgetCancel(conn_) : nullptr; }

  // Settings pgvigil applied for clients (SET name TO value), so the next lease knows what to
  // change. Shared and immutable: clients with the same settings share one copy, so the check
  // on every lease is usually a pointer comparison. Null after a reset that discards them.
  using Settings = std::map<std::string, std::string>;
  const Settings& applied_settings() const;
  void set_applied_settings(std::shared_ptr<const Settings> settings) {
    applied_settings_ = std::move(settings);
  }
  // True when the connection carries exactly `wanted`.
  bool carries(const std::shared_ptr<const Settings>& wanted);
  // The server's ParameterStatus values (server_version, DateStyle, ...), as libpq saw them.
  std::string parameter_status(const char* name) const;

  // Sends Terminate and closes. libpq is in non-blocking mode, so PQfinish cannot block the
  // event loop: the 5-byte Terminate either fits the socket buffer or is dropped.
  void close();

  std::uint64_t id() const { return id_; }
  ConnectionState state() const { return state_; }
  void set_state(ConnectionState state) { state_ = state; }  // only the pool's transition()
  int socket() const { return conn_ ? PQsocket(conn_) : -1; }
  PGconn* native_handle() const { return conn_; }
  int backend_pid() const { return backend_pid_; }  // kept: libpq forgets it once the link breaks
  const std::string& server_address() const { return server_address_; }
  const PoolConfig& config() const { return *config_; }
  bool is_tcp() const { return !config_->server.is_unix_socket(); }
  std::optional<probes::TcpSnapshot> tcp_snapshot() const;

  Clock::time_point created_at() const { return created_at_; }
  Clock::time_point expires_at() const { return expires_at_; }
  void set_expires_at(Clock::time_point when) { expires_at_ = when; }
  Clock::time_point last_alive() const { return last_alive_; }
  void mark_alive(Clock::time_point when = Clock::now()) { last_alive_ = when; }
  // Since a client last gave it back (or it was opened); pings do not reset it.
  Clock::time_point idle_since() const { return idle_since_; }

  // An idle watcher coroutine runs for this connection (read and written by its pool only).
  bool watched = false;
  // The pool's endpoint generation when this connection was opened (see Pool::update_config).
  std::uint64_t endpoint_generation = 0;
  // A reload that keeps the server endpoint hands the connection the new settings, so config()
  // says what its socket carries. Only its pool, on its executor.
  void set_config(std::shared_ptr<const PoolConfig> config) { config_ = std::move(config); }
  void set_idle_since(Clock::time_point when) { idle_since_ = when; }

 private:
  enum class Direction { read, write };

  boost::asio::awaitable<WaitResult> wait(Direction direction, Clock::time_point deadline);
  boost::asio::awaitable<std::optional<ConnectFailure>> resolve(Clock::time_point deadline,
                                                                std::string& address);
  boost::asio::awaitable<std::optional<Death>> flush(Clock::time_point deadline);
  using ResultVisitor = std::function<std::optional<Death>(const PGresult*)>;
  // Sends sql and reads every result until ReadyForQuery, handing each to on_result.
  boost::asio::awaitable<std::optional<Death>> run_statement(const std::string& sql,
                                                             Clock::time_point deadline,
                                                             const ResultVisitor& on_result);
  boost::asio::awaitable<WaitResult> wait_io(Direction direction);
  SSL* tls() const;
  // One SSL_read: bytes read, or 0 with ec set (an error) or not (wait: needs_write says which).
  std::size_t try_tls_read(std::span<char> buffer, boost::system::error_code& ec,
                           bool& needs_write);
  bool register_descriptor();
  void unregister_descriptor();
  Clock::time_point last_kernel_ack() const;
  static void on_notice(void* self, const PGresult* result);

  boost::asio::any_io_executor executor_;
  std::shared_ptr<const PoolConfig> config_;
  std::uint64_t id_;
  PGconn* conn_ = nullptr;
  SSL* tls_ = nullptr;  // libpq's OpenSSL object when the link is TLS
  boost::asio::posix::stream_descriptor descriptor_;
  TurnReader reader_;
  // The last relay read ended the server's answer and claimed the socket drained
  // (turn_reader.hpp), and nothing has checked the socket since: the next read tries first.
  // quick_check's peek, which would see a FIN that came with the answer, clears it. Transaction
  // pooling peeks before every lending, so only there is the system call saved.
  bool drain_claim_unchecked_ = false;
  boost::asio::steady_timer timer_;
  ConnectionState state_ = ConnectionState::connecting;
  std::string server_address_;
  int backend_pid_ = 0;
  std::shared_ptr<const Settings> applied_settings_;
  std::optional<std::string> server_fatal_;  // a FATAL the server sent before closing
  Clock::time_point created_at_ = Clock::now();
  Clock::time_point expires_at_ = Clock::time_point::max();
  Clock::time_point last_alive_ = created_at_;
  Clock::time_point idle_since_ = created_at_;
};

template <typename Handler>
void ServerConnection::async_relay_read(std::span<char> buffer, Handler&& handler) {
  namespace asio = boost::asio;
  const auto complete_now = [this](Handler&& done, boost::system::error_code ec, std::size_t n) {
    asio::post(executor_, [done = std::forward<Handler>(done), ec, n]() mutable { done(ec, n); });
  };
  if (!register_descriptor()) {
    return complete_now(std::forward<Handler>(handler), asio::error::operation_aborted, 0);
  }
  boost::system::error_code ec;
  if (tls() == nullptr) {
    reader_.async_read(descriptor_, buffer, std::exchange(drain_claim_unchecked_, false),
                       AnswerEndedIdle{&drain_claim_unchecked_}, std::forward<Handler>(handler));
    return;
  }
  // TLS: OpenSSL may hold decrypted bytes already, so SSL_read comes first; the socket is
  // waited on only when it asks for more.
  bool needs_write = false;
  const auto n = try_tls_read(buffer, ec, needs_write);
  if (n > 0 || ec) return complete_now(std::forward<Handler>(handler), ec, n);
  async_wait_ready(!needs_write, [this, buffer, handler = std::forward<Handler>(handler)](
                                     boost::system::error_code wait_ec) mutable {
    if (wait_ec) return handler(wait_ec, std::size_t{0});
    async_relay_read(buffer, std::move(handler));
  });
}

template <typename Handler>
void ServerConnection::async_wait_ready(bool for_read, Handler&& handler) {
  namespace asio = boost::asio;
  if (!register_descriptor()) {
    asio::post(executor_, [handler = std::forward<Handler>(handler)]() mutable {
      handler(boost::system::error_code(asio::error::operation_aborted));
    });
    return;
  }
  descriptor_.async_wait(for_read ? asio::posix::descriptor_base::wait_read
                                  : asio::posix::descriptor_base::wait_write,
                         std::forward<Handler>(handler));
}

}  // namespace pgvigil::pool
