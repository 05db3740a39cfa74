#pragma once
// One client connection, from its startup packet to its goodbye.
//
// The startup (SSL refusal, cancel requests, StartupMessage, routing, authentication) runs on
// the accepting worker; then the session moves to its pool's worker and stays there, so that a
// lent server connection is only ever touched by one thread. Between transactions an idle
// client holds no coroutine frame and no buffer: only a pending readability wait.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <memory>
#include <optional>
#include <string>

#include "pool/pool.hpp"
#include "proxy/client_error.hpp"
#include "proxy/client_settings.hpp"
#include "proxy/client_stream.hpp"
#include "proxy/proxy_service.hpp"
#include "proxy/relay/transaction_tracker.hpp"

namespace pgvigil::proxy {

class ClientSession : public CancelTarget, public std::enable_shared_from_this<ClientSession> {
 public:
  // Takes ownership of an accepted client socket; the session runs on `executor` until it knows
  // its database. The caller has already counted the client in (ProxyService::admit_client).
  static void start(ProxyService& service, ClientStream::Executor executor, int fd);

  ClientSession(ProxyService& service, ClientStream::Executor executor, int fd);
  ~ClientSession() override;

  // From any thread (the cancel registry): cancels this client's running query, if any.
  void request_cancel() override;
  // From any thread: end the session with 57P01, after its current transaction unless forced.
  void request_shutdown(bool forced) override;

 private:
  enum class RelayEnd { released, client_quit, client_violation, server_lost, cancelled };
  struct RelayOutcome {
    RelayEnd end;
    std::optional<ClientError> error;  // what to tell the client
    std::optional<pool::Death> death;  // what happened to the server connection
  };

  boost::asio::awaitable<void> handshake();
  boost::asio::awaitable<void> begin();
  boost::asio::awaitable<std::optional<ClientError>> acquire_server();
  void park();
  boost::asio::awaitable<void> serve();
  boost::asio::awaitable<RelayOutcome> relay(std::span<char> client_buffer, std::size_t initial,
                                             std::span<char> server_buffer);
  boost::asio::awaitable<RelayOutcome> pump_client_to_server(std::span<char> buffer,
                                                             std::size_t initial);
  boost::asio::awaitable<RelayOutcome> pump_server_to_client(std::span<char> buffer);
  // GCC 12 destroys twice a by-value argument of a coroutine called inside co_await, so the
  // coroutines here take no class-type arguments and the functions that do are plain ones.
  boost::asio::awaitable<void> wait_for_cancels();
  void return_server(std::optional<pool::Death> death);
  boost::asio::awaitable<void> end_session();
  // Gives the server connection back as the session ends: reset (session mode) when clean,
  // evicted when the client left it mid-request.
  boost::asio::awaitable<void> give_back_at_end();
  boost::asio::awaitable<void> finish_for_shutdown();
  // Tells the client why (ErrorResponse, FATAL), gives the server connection back and closes.
  void fail(ClientError error);
  boost::asio::awaitable<void> send_failure();
  void close();
  void cancel_running_query();
  std::string startup_reply() const;
  bool transaction_pooling() const;

  ProxyService& service_;
  std::unique_ptr<ClientStream> stream_;
  // Members are kept few and small: an idle client is this object plus its socket.
  std::unique_ptr<boost::asio::steady_timer> timer_;  // startup deadline; waits for cancels
  Route* route_ = nullptr;
  std::shared_ptr<const SettingMap> settings_;
  std::optional<CancelKey> cancel_key_;
  pool::Lease server_;
  relay::TransactionTracker tracker_;
  relay::MessageScanner client_scanner_;
  relay::MessageScanner server_scanner_;
  std::string pending_input_;  // read during authentication, relayed first
  std::unique_ptr<ClientError> failure_;
  int cancels_in_flight_ = 0;
  bool release_requested_ = false;  // the server pump ended the transaction
  bool parked_ = false;              // idle, waiting for the client's next message
  bool shutdown_requested_ = false;  // pgvigil is draining: end after this transaction
  bool shutdown_forced_ = false;     // the drain timed out: end now
  bool counted_in_route_ = false;
};

}  // namespace pgvigil::proxy
