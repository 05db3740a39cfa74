#pragma once
// One client connection, from its startup packet to its goodbye.
//
// The startup (SSL refusal, cancel requests, StartupMessage, routing, authentication) runs on
// the accepting worker; then the session moves to its pool's worker and stays there, so that a
// lent server connection is only ever touched by one thread. The relay is plain callbacks on
// that worker. A client quiet for more than a moment holds no coroutine frame and no buffer:
// only a pending readability wait.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <memory>
#include <optional>
#include <string>

#include "pool/pool.hpp"
#include "proxy/buffer_pool.hpp"
#include "proxy/client_error.hpp"
#include "proxy/client_settings.hpp"
#include "proxy/client_stream.hpp"
#include "proxy/proxy_service.hpp"
#include "proxy/relay/request_ended.hpp"
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
  friend class LingerSweep;

  // How a relay ends, once none of its I/O is pending any more (see end_after_io).
  enum class Ending { quit, shutdown, client_violation, server_lost, failure };
  struct Stop {
    Ending ending;
    std::optional<ClientError> error;  // what to tell the client
    std::optional<pool::Death> death;  // what happened to the server connection
  };

  // --- startup and the slow paths (client_session.cpp); coroutines
  boost::asio::awaitable<void> handshake();
  boost::asio::awaitable<void> begin();
  boost::asio::awaitable<std::optional<ClientError>> acquire_server();
  // GCC 12 destroys twice a by-value argument of a coroutine called inside co_await, so the
  // coroutines here take no class-type arguments and the functions that do are plain ones.
  boost::asio::awaitable<void> acquire_then_forward(std::size_t size);
  boost::asio::awaitable<void> write_rest_to_server(std::size_t from, std::size_t to);
  boost::asio::awaitable<void> write_rest_to_client(std::size_t from, std::size_t to);
  boost::asio::awaitable<void> return_after_cancels();
  boost::asio::awaitable<void> wait_for_cancels();
  boost::asio::awaitable<void> end_session();
  // Gives the server connection back as the session ends: reset (session mode) when clean,
  // evicted when the client left it mid-request.
  boost::asio::awaitable<void> give_back_at_end();
  boost::asio::awaitable<void> finish_for_shutdown();
  boost::asio::awaitable<void> end_relay_with_error();
  boost::asio::awaitable<void> send_failure();
  template <typename Coroutine>
  void spawn(Coroutine coroutine);

  // --- the relay (client_session_relay.cpp): plain callbacks, one pending read per direction
  void park();
  void start_relay();
  void read_client();
  void on_client_read(boost::system::error_code ec, std::size_t size);
  void on_client_bytes(std::size_t size);
  bool server_ready_now();
  void wait_for_server(std::size_t size);
  void on_checkout(pool::CheckoutResult result, std::size_t size);
  // The coroutine path of a checkout: a ping before lending, or settings to apply.
  void start_acquire(std::size_t size);
  void forward_to_server(std::size_t size);
  void after_forward_to_server();
  void read_server();
  void on_server_read(boost::system::error_code ec, std::size_t size);
  void after_forward_to_client();
  void transaction_done();
  void give_server_back();
  void flush_relay_metrics();
  // The idle sweep (LingerSweep): false once the session no longer lingers with a buffer.
  bool sweep_linger();
  // Stops the relay's pending I/O, then ends as `stop` says.
  void end_after_io(Stop stop);
  void continue_ending();
  Stop server_lost(const pool::Death& death);

  void return_server(std::optional<pool::Death> death);
  // Tells the client why (ErrorResponse, FATAL), gives the server connection back and closes.
  void fail(ClientError error);
  void close();
  void cancel_running_query();
  std::string startup_reply() const;
  bool transaction_pooling() const;
  bool between_requests() const;
  bool client_left_unnoticed();

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
  std::unique_ptr<std::string> pending_input_;  // read during authentication, relayed first
  std::unique_ptr<ClientError> failure_;
  std::unique_ptr<Stop> stop_;  // why the relay ends (set once)
  std::unique_ptr<Stop> stop_after_forward_;  // a refused client message, once what came
                                              // before it has reached the server
  // Held while the session relays, and for a moment after (lingering): see LingerSweep.
  BufferLease client_buffer_;
  BufferLease server_buffer_;
  std::uint32_t relayed_to_server_ = 0;  // bytes not yet added to the metrics
  std::uint32_t relayed_to_client_ = 0;
  std::uint32_t held_client_bytes_ = 0;  // read while the server connection was going back
  std::uint16_t cancels_in_flight_ = 0;
  std::uint8_t io_in_flight_ = 0;  // pending reads, slow-path writes and checkouts
  // The last client read ended a request and claimed the socket drained (pool/turn_reader.hpp),
  // and nothing has looked at the socket since. Not a bit-field: the read's rule sets it.
  bool client_claim_unchecked_ = false;
  bool client_reading_ : 1 = false;
  bool server_reading_ : 1 = false;
  bool returning_server_ : 1 = false;   // waiting for a cancel before the connection goes back
  bool ending_started_ : 1 = false;     // the ending coroutine runs: later completions are dropped
  bool parked_ : 1 = false;             // idle, waiting for the client without a buffer
  bool park_requested_ : 1 = false;     // the idle sweep cancelled the read to park
  bool recently_active_ : 1 = false;    // a transaction ended since the last idle sweep
  bool lingering_ : 1 = false;          // listed with the worker's LingerSweep
  bool shutdown_requested_ : 1 = false; // pgvigil is draining: end after this transaction
  bool shutdown_forced_ : 1 = false;    // the drain timed out: end now
  bool counted_in_route_ : 1 = false;
  bool server_input_lost_ : 1 = false;  // a server read completed after the relay stopped
  bool writing_to_client_ : 1 = false;  // write_rest_to_client sends from the server buffer
};

}  // namespace pgvigil::proxy
