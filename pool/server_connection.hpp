#pragma once
// One PostgreSQL server connection: its libpq link, its socket as a byte stream, its state in
// the pool and what it has shown of its health. Not thread-safe: it lives on its pool's
// executor, and whoever leases it runs on that same executor, so the socket never changes
// hands between threads.
//
// Its jobs are split by file: server_connection.cpp (lifecycle, waits, idle checks),
// server_connect.cpp (connecting), server_statements.cpp (pgvigil's own statements: pings,
// settings, the reset query), failure_diagnosis.cpp (why it died); libpq_link.cpp is the only
// caller of libpq.
//
// libpq owns the descriptor; the stream borrows it. Once connected it stays registered with the
// event loop until close(), or until libpq drops it after an error (the stream then releases it
// at once). While connecting, it is released before every PQconnectPoll, which may close or
// replace the socket, so a reused descriptor number can never be unregistered by mistake.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "pool/connect_failure.hpp"
#include "pool/connection_state.hpp"
#include "pool/eviction_reason.hpp"
#include "pool/failure_diagnosis.hpp"
#include "pool/libpq_link.hpp"
#include "pool/server_link.hpp"
#include "pool/pool_settings.hpp"
#include "pool/server_role.hpp"
#include "probes/tcp_info.hpp"
#include "stream/socket_stream.hpp"

namespace pgvigil::pool {

struct ConnectFailure {
  ConnectFailureCause cause;
  std::string message;  // libpq's or ours; never contains the password
  // Set when an established connection died while asked something (ask_role): how it died.
  std::optional<Death> death = std::nullopt;
};

// What a lease holder keeps with a connection from one lease to the next (the relay's record of
// what it set up there). The pool never looks inside; it goes when the connection goes.
class LeaseState {
 public:
  virtual ~LeaseState() = default;
};

class ServerConnection {
 public:
  enum class WaitResult { ready, timed_out, aborted };
  using Ready = stream::SocketStream::Ready;

  ServerConnection(stream::Executor executor, std::shared_ptr<const PoolConfig> config,
                   std::uint64_t id);
  ~ServerConnection();
  ServerConnection(const ServerConnection&) = delete;
  ServerConnection& operator=(const ServerConnection&) = delete;

  // Resolves the host off the event loop, connects with libpq's non-blocking API and
  // authenticates. nullopt on success. May be called again after a failure, for another host.
  boost::asio::awaitable<std::optional<ConnectFailure>> connect(const ServerHost& host,
                                                                Clock::time_point deadline);
  // After connect: the server's role from its ParameterStatus (PostgreSQL 14 and later); false
  // when it sent none. ask_role() asks an older server (kRoleQuery); nullopt on success.
  bool take_reported_role();
  boost::asio::awaitable<std::optional<ConnectFailure>> ask_role(Clock::time_point deadline);
  // The server reports its role (in_hot_standby, PostgreSQL 14 and later), so a change reaches
  // the connection by itself; otherwise the ping must ask it.
  bool reports_role() const { return role_reported_; }
  // Ignores the server's role reports from now on, as if it were older than PostgreSQL 14: the
  // ping then asks the role. For tests, which have only newer servers; never called otherwise.
  void ignore_role_reports() { role_reported_ = false; }
  const RoleReport& role() const { return role_; }
  // The relay saw in_hot_standby reported while it held the connection (a promotion).
  void note_hot_standby_report(std::string_view value);
  // The server reported another role than it had at connect: the connection must go once its
  // client has finished (reason role_changed). Cheap: asked at every return to the pool.
  bool role_changed() const { return role_changed_; }
  // The role the server reports now: role() until it reports another.
  ServerRole reported_role() const {
    if (!role_changed_) return role_.role;
    return role_.role == ServerRole::standby ? ServerRole::primary : ServerRole::standby;
  }
  Death role_change_death() const;

  // Sends the ping (the empty query, or ping.query) and waits for ReadyForQuery. Returns the
  // round-trip time, or why the connection must go.
  boost::asio::awaitable<std::variant<Clock::duration, Death>> ping(const std::string& query,
                                                                    Clock::time_point deadline);

  // Runs statements of pgvigil's own (SET for a client's settings, the reset query) through
  // libpq; their results never reach a client. nullopt on success, else why it failed: a server
  // error (the connection is still usable) or a death (statement_timeout when unanswered).
  struct StatementError {
    std::string sqlstate;
    std::string message;
    std::optional<Death> death;  // set when the connection is gone
  };
  boost::asio::awaitable<std::optional<StatementError>> execute(const std::string& sql,
                                                                Clock::time_point deadline);
  // Likewise for a query of pgvigil's own that answers with one value: the first column of the
  // first row of its first result with rows (nullopt when none came).
  struct Answer {
    std::optional<std::string> value;
    std::optional<StatementError> error;
  };
  boost::asio::awaitable<Answer> query_value(const std::string& sql, Clock::time_point deadline);
  // A query with parameters ($1, ...), bound by the server rather than spliced into the SQL:
  // the first row of its first result with rows (row: nullopt when it had none).
  struct RowAnswer {
    std::optional<std::vector<std::optional<std::string>>> row;
    std::optional<StatementError> error;
  };
  boost::asio::awaitable<RowAnswer> query_row(const std::string& sql,
                                              const std::vector<std::string>& parameters,
                                              Clock::time_point deadline);

  // Waits until the socket is readable (the server sent something, or closed) or writable, or
  // until the deadline. aborted when the connection was detached or closed meanwhile.
  boost::asio::awaitable<WaitResult> wait_ready(Ready ready, Clock::time_point deadline);

  // Reads what arrived on an idle connection. nullopt: nothing wrong (a notice, a parameter
  // change); otherwise the connection is dead (FATAL, EOF, socket error).
  std::optional<Death> absorb_idle_input();

  // A check that costs no round trip: EOF, a reset or a message (a FATAL) waiting on the socket,
  // answered from the event loop's last report when it can, else by a peek; thorough always
  // peeks and adds the kernel's TCP state (one getsockopt).
  std::optional<Death> quick_check(bool thorough);

  // Diagnoses a failed socket (failure_diagnosis.hpp). data_in_flight: we were waiting for an
  // answer, so a timeout is TCP_USER_TIMEOUT rather than keep-alive.
  Death diagnose_failure(bool data_in_flight, const std::string& context);

  // Ends any wait on the connection (the pool's idle watcher when it is lent, a lease holder's
  // pending read when it must stop). Safe when nothing waits.
  void detach();

  // The pool found the server down while the connection was lent: its lease holder must stop
  // using it and give it back with this death. Ends the holder's pending read.
  void condemn(const Death& death) {
    condemned_ = std::make_unique<Death>(death);
    detach();
  }
  const Death* condemned() const { return condemned_.get(); }

  // --- for a lease holder. The server must be at a message boundary when the lease ends, and
  // at ReadyForQuery if libpq is to use it again.

  // The socket as a byte stream (through TLS when the link is TLS), for the raw protocol.
  stream::SocketStream& stream() { return stream_; }
  // Cancels whatever the backend runs now; it blocks: call it off the event loop. Empty when
  // not connected.
  CancelOrder cancel_order() const { return link_->cancel_order(); }
  // The server's ParameterStatus values (server_version, DateStyle, ...), as libpq saw them.
  std::string parameter_status(const char* name) const { return link_->parameter_status(name); }
  LeaseState* lease_state() const { return lease_state_.get(); }
  void set_lease_state(std::unique_ptr<LeaseState> state) { lease_state_ = std::move(state); }

  // Sends Terminate and closes (libpq_link.hpp: cannot block the event loop).
  void close();

  std::uint64_t id() const { return id_; }
  ConnectionState state() const { return state_; }
  void set_state(ConnectionState state) { state_ = state; }  // only the pool's transition()
  int socket() const { return link_->socket(); }
  // libpq's handle, for tests that speak libpq themselves; null for a link of pgvigil's own.
  PGconn* native_handle() const;
  int backend_pid() const { return backend_pid_; }  // kept: libpq forgets it once the link breaks
  const std::string& server_address() const { return server_address_; }
  const ServerHost& host() const { return host_; }   // the configured host it connected to
  bool host_picked() const { return host_picked_; }  // connect() was called: host() is its
  const PoolConfig& config() const { return *config_; }
  bool is_tcp() const { return !host_.is_unix_socket(); }
  std::optional<probes::TcpSnapshot> tcp_snapshot() const;

  Clock::time_point created_at() const { return created_at_; }
  Clock::time_point expires_at() const { return expires_at_; }
  void set_expires_at(Clock::time_point when) { expires_at_ = when; }
  Clock::time_point last_alive() const { return last_alive_; }
  void mark_alive(Clock::time_point when = Clock::now()) { last_alive_ = when; }
  // Since a client last gave it back (or it was opened); pings do not reset it.
  Clock::time_point idle_since() const { return idle_since_; }
  void set_idle_since(Clock::time_point when) { idle_since_ = when; }

  // An idle watcher coroutine runs for this connection (read and written by its pool only).
  bool watched = false;
  // The pool's endpoint generation when this connection was opened (see Pool::update_config).
  std::uint64_t endpoint_generation = 0;
  // Counted in its pool's servers in use (Pool::status) until it is forgotten.
  bool counted_on_server = false;
  // Its server refused a write as read-only (25006) while held as a primary's: its role is
  // asked again when it comes back (Pool::recheck_role). Set by the lease holder.
  bool role_suspect = false;
  // A reload that keeps the server endpoint hands the connection the new settings, so config()
  // says what its socket carries. Only its pool, on its executor.
  void set_config(std::shared_ptr<const PoolConfig> config) { config_ = std::move(config); }

 private:
  boost::asio::awaitable<std::optional<ConnectFailure>> resolve(Clock::time_point deadline,
                                                                std::string& address);
  // Sends sql (with parameters when not null) and reads every result until ReadyForQuery,
  // handing each to on_result (which may return a death). on_timeout names an answer that does
  // not come by the deadline.
  template <typename OnResult>
  boost::asio::awaitable<std::optional<Death>> run_statement(
      const std::string& sql, Clock::time_point deadline, EvictionReason on_timeout,
      OnResult on_result, const std::vector<std::string>* parameters = nullptr);
  boost::asio::awaitable<std::optional<Death>> flush(Clock::time_point deadline,
                                                     EvictionReason on_timeout);
  // Keeps the stream on libpq's socket: attached while libpq has one, released the moment it
  // has none (after a libpq call that may have closed it). false when there is no socket.
  bool track_socket();

  stream::Executor executor_;
  std::shared_ptr<const PoolConfig> config_;
  std::uint64_t id_;
  std::unique_ptr<ServerLink> link_;  // never null; a new one at every connect()
  stream::SocketStream stream_;
  boost::asio::steady_timer timer_;
  ConnectionState state_ = ConnectionState::connecting;
  ServerHost host_;
  bool host_picked_ = false;
  std::string server_address_;
  RoleReport role_;
  bool role_changed_ = false;
  bool role_reported_ = false;
  int backend_pid_ = 0;
  std::unique_ptr<LeaseState> lease_state_;
  std::unique_ptr<Death> condemned_;
  Clock::time_point created_at_ = Clock::now();
  Clock::time_point expires_at_ = Clock::time_point::max();
  Clock::time_point last_alive_ = created_at_;
  Clock::time_point idle_since_ = created_at_;
};

}  // namespace pgvigil::pool
