#pragma once
// One PostgreSQL server connection. The only code in pgvigil that calls libpq or touches a
// server socket while it sits in the pool. Not thread-safe: it lives on its pool's executor; a
// client that leases it takes the socket to its own executor (detach) and brings it back (attach).
//
// libpq owns the descriptor. It is wrapped in an Asio descriptor only while we wait on it, and
// released (never closed) before any libpq call that may close or replace it, so a reused
// descriptor number can never be unregistered by mistake.

#include <libpq-fe.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
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

  // A check that costs no round trip: kernel TCP state, pending socket error, EOF or a message
  // waiting on the socket.
  std::optional<Death> quick_check();

  // Diagnoses a failed socket. data_in_flight: we were waiting for an answer, so a timeout is
  // TCP_USER_TIMEOUT rather than keep-alive.
  Death diagnose_failure(bool data_in_flight, const std::string& context);

  // Stops every wait and unregisters the descriptor (without closing it), so that another
  // executor may wrap it. Safe to call when nothing waits.
  void detach();

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
  void set_idle_since(Clock::time_point when) { idle_since_ = when; }

 private:
  enum class Direction { read, write };

  boost::asio::awaitable<WaitResult> wait(Direction direction, Clock::time_point deadline);
  boost::asio::awaitable<std::optional<ConnectFailure>> resolve(Clock::time_point deadline,
                                                                std::string& address);
  boost::asio::awaitable<std::optional<Death>> flush(Clock::time_point deadline);
  std::optional<Death> collect_ping_results(bool& done);
  Clock::time_point last_kernel_ack() const;
  static void on_notice(void* self, const PGresult* result);

  boost::asio::any_io_executor executor_;
  std::shared_ptr<const PoolConfig> config_;
  std::uint64_t id_;
  PGconn* conn_ = nullptr;
  boost::asio::posix::stream_descriptor descriptor_;
  boost::asio::steady_timer timer_;
  ConnectionState state_ = ConnectionState::connecting;
  std::string server_address_;
  int backend_pid_ = 0;
  std::optional<std::string> server_fatal_;  // a FATAL the server sent before closing
  Clock::time_point created_at_ = Clock::now();
  Clock::time_point expires_at_ = Clock::time_point::max();
  Clock::time_point last_alive_ = created_at_;
  Clock::time_point idle_since_ = created_at_;
};

}  // namespace pgvigil::pool
