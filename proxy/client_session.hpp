#pragma once
// One client connection, from its first byte to its goodbye.
//
// Its life is a sequence of phases, changed only by enter(), which logs why:
//   startup, authenticating  on the accepting worker; ClientStartup does the talking.
//   idle                     from then on on its pool's worker, so that a lent server connection
//                            is only ever touched by one thread: no server connection, nothing
//                            unanswered. For a moment after a transaction the client read stays
//                            pending with its buffer (lingering); a client that stays quiet is
//                            parked: it holds only a readability wait, no buffer, no frame.
//   waiting_for_server       a request is in hand; a checkout (or the client's settings being
//                            applied to the connection it got) is pending.
//   relaying                 a server connection is lent and a request is unanswered.
//   pinned                   a server connection stays lent with nothing unanswered: inside a
//                            transaction, or for the whole session in session pooling.
//   ending                   the session stops; it ends once its pending I/O has completed.
// Every asynchronous operation of the session goes through one guard (completion()): the
// operation counts as pending until its completion runs, and a completion that arrives once the
// session is ending goes to the ending instead of the relay.
//
// The relay itself is plain callbacks (client_session_requests.cpp, client_session_answers.cpp);
// coroutines are kept for the slow paths (a peer that cannot take everything at once, a checkout
// that must ping or apply settings, the endings: client_session_ending.cpp).
// What a client leaves in the server session in transaction pooling (settings that follow it,
// state that pins it) is client_session_state.cpp. A session between transactions may move to
// another worker's shard of its database when its own worker is busy (client_session_move.cpp).

#include <sys/socket.h>

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <exception>
#include <memory>
#include <optional>
#include <string>

#include "pool/pool.hpp"
#include "pool/server_connection.hpp"
#include "proxy/buffer_pool.hpp"
#include "proxy/client_error.hpp"
#include "proxy/client_settings.hpp"
#include "proxy/proxy_service.hpp"
#include "proxy/relay/message_forwarder.hpp"
#include "proxy/relay/message_scanner.hpp"
#include "proxy/relay/session_state.hpp"
#include "proxy/relay/statement_relay.hpp"
#include "proxy/relay/transaction_tracker.hpp"
#include "stream/socket_stream.hpp"

namespace pgvigil::proxy {

class ClientSession : public CancelTarget, public std::enable_shared_from_this<ClientSession> {
 public:
  enum class Phase : std::uint8_t {
    startup,
    authenticating,
    idle,
    waiting_for_server,
    relaying,
    pinned,
    ending,
  };

  // Takes ownership of an accepted client socket; the session runs on `executor` until it knows
  // its database. The caller has already counted the client in (ProxyService::admit_client).
  // `peer_address`: the client's, as accept4 gave it.
  static void start(ProxyService& service, stream::Executor executor, int fd,
                    const sockaddr_storage& peer_address);

  ClientSession(ProxyService& service, stream::Executor executor, int fd);
  ~ClientSession() override;

  // From any thread (the cancel registry): cancels this client's running query, if any.
  void request_cancel() override;
  // From any thread: end the session with 57P01, after its current transaction unless forced.
  void request_shutdown(bool forced) override;

 private:
  friend class LingerSweep;

  // The session's operations that may be pending; at most one of each at a time.
  enum Io : std::uint8_t {
    client_read = 1 << 0,   // the relay's read from the client
    client_wait = 1 << 1,   // parked: a readability wait on the client, without a buffer
    server_read = 1 << 2,   // the relay's read from the server
    server_write = 1 << 3,  // the rest of the client's bytes, to a server slow to take them
    client_write = 1 << 4,  // the rest of the server's bytes, to a client slow to take them
    checkout = 1 << 5,      // a server connection (or its settings) on the way
    turn_end = 1 << 6,      // before the server connection goes back: a cancel must land, or
                            // settings the client changed in SQL be read back
  };
  // How a session ends, once none of its I/O is pending any more (see end_after_io).
  enum class Ending : std::uint8_t { quit, shutdown, client_violation, server_lost, failure };
  struct Stop {
    Ending ending;
    std::optional<ClientError> error;  // what to tell the client
    std::optional<pool::Death> death;  // what happened to the server connection
  };
  // pgvigil's drain (SIGTERM): none, end after the current transaction, or end now.
  enum class Drain : std::uint8_t { none, after_transaction, now };

  void enter(Phase next, const char* why);
  // Marks `io` pending and returns its completion handler, which clears it and then calls
  // Member(results..., bound...) on this session, or, once the session is ending, hands the
  // results to the ending (absorb_after_stop) and goes on ending. Keeps the session alive.
  template <auto Member, typename... Bound>
  auto completion(Io io, Bound... bound);
  bool pending(Io io) const { return (pending_ & io) != 0; }
  // What a completion that arrives while ending still matters for.
  void absorb_after_stop(Io io, boost::system::error_code ec, std::size_t size);  // server read
  void absorb_after_stop(Io io, pool::CheckoutResult& result);  // a lease to give back
  template <typename... Results>
  void absorb_after_stop(Io, Results&...) {}

  // --- startup and the slow paths (client_session.cpp); coroutines
  boost::asio::awaitable<void> handshake(sockaddr_storage peer_address);
  boost::asio::awaitable<void> begin();
  // The session needs a server connection before it can answer the login (session pooling, a
  // server not yet known, a setting spelt in a way not yet learnt); otherwise begin_at_once().
  bool begins_with_server() const;
  // begin() for a session that needs nothing awaited: no coroutine of its own.
  void begin_at_once();
  // The end of either: registers the session and sends the startup reply.
  void greet();
  boost::asio::awaitable<void> send_rest_of_greeting();
  void ready_for_queries();
  boost::asio::awaitable<std::optional<ClientError>> acquire_server();
  // GCC 12 destroys twice a by-value argument of a coroutine called inside co_await, so the
  // coroutines here take no arguments with a destructor (handshake's address is plain bytes)
  // and the functions that do are plain ones.
  boost::asio::awaitable<std::optional<ClientError>> acquire_settings();
  // The rest of what forward_to_server() planned: client buffer bytes [from, to), or unsent_
  // when from == to (server buffer bytes or unsent_to_client_ the other way).
  boost::asio::awaitable<boost::system::error_code> write_rest_to_server(std::size_t from,
                                                                         std::size_t to);
  boost::asio::awaitable<boost::system::error_code> write_rest_to_client(std::size_t from,
                                                                         std::size_t to);
  boost::asio::awaitable<void> wait_for_cancels();
  // What must happen before a transaction's server connection goes back (Io::turn_end).
  boost::asio::awaitable<void> settle_turn();
  // Transaction pooling: asks the server which settings the session carries, now that the
  // client changed some in SQL (settings_read_back.hpp), and makes them the client's.
  boost::asio::awaitable<void> read_back_settings();
  boost::asio::awaitable<void> end_session();
  // Gives the server connection back as the session ends: reset (session mode) when clean,
  // evicted when the client left it mid-request.
  boost::asio::awaitable<void> give_back_at_end();
  boost::asio::awaitable<void> finish_for_shutdown();
  boost::asio::awaitable<void> end_with_error();
  template <typename Coroutine>
  void spawn(Coroutine coroutine);

  // --- the relay (client_session_relay.cpp): plain callbacks, one pending read per direction
  void park();
  void on_parked_wake(boost::system::error_code ec);
  void start_relay();
  // Lists the session with its worker's LingerSweep (transaction pooling), unless it is already.
  void watch_by_sweep();
  void read_client();
  void on_client_read(boost::system::error_code ec, std::size_t size);
  // request_whole: the read's rule found a whole request in these bytes (request_whole_).
  void on_client_bytes(std::size_t size, bool request_whole = false);
  // The bytes in hand (from a message boundary) hold no whole request yet: they end inside a
  // message, or hold extended-protocol messages without their Sync or Flush. The session reads on
  // before it takes a server connection, so a client that sends half a request holds none.
  bool request_incomplete(std::size_t size);
  // The client has sent part of a message (kept before a server connection, or held or streamed
  // by the forwarder) and owes the rest.
  bool request_half_in() const { return kept_client_bytes_ > 0 || !forwarder_.at_boundary(); }
  bool server_ready_now();
  void wait_for_server(std::size_t size);
  void on_checkout(pool::CheckoutResult result, std::size_t size);
  // The coroutine path of a checkout: a ping before lending, or settings to apply.
  void start_acquire(std::size_t size);
  void on_acquired(std::exception_ptr, std::optional<ClientError> error, std::size_t size);
  // No server connection came for the `size` bytes of requests in hand (client_session_refusal):
  // each is answered with the error and ReadyForQuery where the session can go on, else it ends.
  void refuse_request(ClientError error, std::size_t size);
  bool answer_refused_requests(const ClientError& error, std::size_t size,
                               std::string& answer);
  void forward_to_server(std::size_t size);
  // The forwarder's visitor: checks and counts one client message; false refuses it.
  bool accept_client_message(const relay::MessageHeader& header, std::span<const char> whole,
                             relay::Edit& edit);
  // Transaction pooling: a Query or Parse that leaves session state pins the client.
  void look_for_session_state(const relay::MessageHeader& header, std::span<const char> whole);
  // A RESET of `name` ("" for all): the settings the client SET in SQL are no longer its own.
  void forget_set_settings(const std::string& name);
  // Replaces settings_ (interned) once the session has begun, keeping what the client asked for
  // at startup in Occasional while the two differ.
  void set_settings(std::shared_ptr<const SettingMap> next);
  const SettingMap& startup_settings() const;
  // The client keeps its server connection for the rest of its session, reset when it leaves.
  void pin(relay::PinCause cause);
  // What of the plan the peer has not taken yet goes out on the slow path.
  enum class Toward : std::uint8_t { server, client };
  void write_rest_of_plan(relay::ForwardPlan& plan, std::size_t written, Toward toward);
  // The visitor of the server's messages: the tracker's count, the statements' answers.
  bool on_server_message(const relay::MessageHeader& header, std::span<const char> whole,
                         relay::Edit& edit, relay::ServerStatements* statements);
  // An ErrorResponse or CommandComplete that may change what the connection's statements are.
  void note_statement_outcome(char type, std::span<const char> whole);
  // An ErrorResponse on a primary's connection: 25006 (a write refused as read-only) has the
  // pool ask the server's role when the connection comes back.
  void note_error_on_primary(std::span<const char> whole);
  // Transaction pooling: a ParameterStatus the server sent during the client's transaction.
  void adopt_reported_setting(std::span<const char> whole);
  // The answer to a lone SET the client sent (pending_set_): adopted when it is "SET".
  void settle_pending_set(std::span<const char> whole);
  // `name` is the client's setting from now on, and the connection carries it.
  void adopt_setting(std::string name, std::string value);
  // Answers pgvigil made whose turn came with nothing owed by the server before them.
  void send_made_answers();
  relay::ServerStatements& server_statements();
  void on_server_written(std::exception_ptr, boost::system::error_code ec);
  void after_forward_to_server();
  void read_server();
  void on_server_read(boost::system::error_code ec, std::size_t size);
  void on_client_written(std::exception_ptr, boost::system::error_code ec);
  void after_forward_to_client();
  void transaction_done();
  void on_turn_settled(std::exception_ptr);
  void give_server_back();
  // Bytes the client sent while its server connection was on its way back go on now.
  void take_held_client_bytes();
  // The tracker's query and transaction counts reach the route's tally (bytes go as written).
  void flush_relay_metrics();
  // The idle sweep (LingerSweep), `since_last` after the one before: false once the session no
  // longer lingers with a buffer.
  bool sweep_linger(std::chrono::milliseconds since_last);
  // --- moving to another worker (client_session_move.cpp)
  // From any thread: runs `action` on the session's worker, following the session if it moved.
  template <typename Action>
  void at_home(Action action);
  // Transaction pooling, between transactions, nothing held but the pending client read: the
  // session can continue on another worker.
  bool movable() const;
  // On the sweep: asks the placement whether this session should move, and if so cancels its
  // read to move once the read has let go (on_client_read). False when it stays.
  bool request_move();
  // The read let go: hands the socket to the chosen worker, which takes the session (arrive()).
  void move_to_worker();
  void arrive(Route* next, stream::HandedOff handed, std::size_t worker);
  // The parked sessions' check (LingerSweep), `elapsed` after the one before: false once the
  // session is no longer parked, or is woken because it was idle past pool.client_idle_timeout.
  bool sweep_parked(std::chrono::milliseconds elapsed);
  // A wait past its bound (client_session_bounds.cpp): why the session must end, if it must.
  std::optional<Stop> over_a_bound(std::chrono::milliseconds since_last);
  std::optional<Stop> client_over_its_bound(std::chrono::milliseconds since_last);
  std::optional<Stop> server_over_its_bound(std::chrono::milliseconds since_last);
  void suspect_a_silent_server();
  ClientError idle_session_error() const;
  // Stops the relay's pending I/O, then ends as `stop` says.
  void end_after_io(Stop stop);
  void continue_ending();
  Stop server_lost(const pool::Death& death);

  void return_server(std::optional<pool::Death> death);
  // Tells the client why (ErrorResponse, FATAL), gives the server connection back and closes.
  void fail(ClientError error);
  boost::asio::awaitable<void> send_failure();
  void close();
  void cancel_running_query();
  // ParameterStatus for each reported setting, BackendKeyData, ReadyForQuery.
  void append_startup_reply(std::string& reply) const;
  // A reported setting the client asked for whose server spelling the route has not learnt.
  bool spelling_unknown() const;
  // Right after the client's settings were applied: how the server spells them.
  void learn_spellings();
  ClientError checkout_failure(const pool::CheckoutError& error) const;
  static ClientError shutdown_failure();
  // A slow path's coroutine failed with an exception (out of memory): nothing more can be done
  // for this session.
  static ClientError internal_failure(std::exception_ptr error);
  bool transaction_pooling() const;
  bool between_requests() const;
  bool client_left_unnoticed();

  // What a session needs only now and then, behind one pointer: an idle client is most of
  // pgvigil's memory at scale (bench/run.sh measures bytes per idle client against PgBouncer's),
  // and a quiet one that needs none of it holds 8 bytes for all of it.
  struct Occasional {
    std::unique_ptr<std::string> pending_input;  // read during authentication, relayed first
    // What authentication left to tell the client (AuthenticationOk): sent with the startup reply.
    std::unique_ptr<std::string> greeting;
    std::unique_ptr<std::string> unsent;  // a plan of several pieces the server did not take whole
    std::unique_ptr<std::string> unsent_to_client;  // likewise, for the client
    // A refused client message, once what came before it has reached the server.
    std::unique_ptr<Stop> stop_after_forward;
    std::unique_ptr<relay::PlainSet> pending_set;             // a lone SET waiting for its answer
    std::unique_ptr<boost::asio::steady_timer> cancel_timer;  // made when a cancel must land
    // settings_ as the client asked for them at startup, once SQL has made settings_ differ.
    std::shared_ptr<const SettingMap> startup_settings;
    // The shard route the session moves to once its read has let go (request_move).
    Route* moving_to = nullptr;
    bool empty() const {
      return !pending_input && !greeting && !unsent && !unsent_to_client && !stop_after_forward &&
             !pending_set && !cancel_timer && !startup_settings && !moving_to;
    }
  };
  Occasional& occasional();  // made on first use
  // One of occasional_'s members, or null when it (or occasional_) is not there.
  template <typename T>
  T* occasional(std::unique_ptr<T> Occasional::*member) const {
    return occasional_ ? (occasional_.get()->*member).get() : nullptr;
  }

  ProxyService& service_;
  // The client's socket, owned. Moved once (adopt()), when the session moves to its pool's worker.
  // [[no_unique_address]] lets the small members after it sit in its 6 bytes of tail padding.
  [[no_unique_address]] stream::SocketStream stream_;
  std::uint16_t cancels_in_flight_ = 0;
  // Transaction pooling: why the client keeps its server connection (session state), if it does.
  std::optional<relay::PinCause> pin_;
  Phase phase_ = Phase::startup;
  std::uint8_t pending_ = 0;  // Io bits
  // Members are kept few and small: an idle client is this object plus its socket.
  Route* route_ = nullptr;
  std::shared_ptr<const SettingMap> settings_;  // interned (intern_settings); see set_settings()
  CancelKey cancel_key_;  // set once the session has reached its pool's worker (has_cancel_key_)
  // Bytes of a request not yet whole, kept at the front of the client buffer without a server
  // connection (request_incomplete).
  std::uint32_t kept_client_bytes_ = 0;
  std::uint32_t held_client_bytes_ = 0;  // read while the server connection was going back
  pool::Lease server_;
  relay::TransactionTracker tracker_;
  relay::RequestForwarder forwarder_;    // what the client sends, message by message
  relay::ResponseForwarder responses_;   // what the server sends, message by message
  // Transaction pooling: the client's named statements, renamed on each server connection.
  // Made at a lease's first request; dropped when the session parks holding none.
  std::unique_ptr<relay::StatementRelay> statements_;
  std::unique_ptr<Stop> stop_;              // why the session ends (set once)
  std::unique_ptr<Occasional> occasional_;  // made when first needed; dropped empty at park()
  // Held while the session relays, and for a moment after (lingering): see LingerSweep.
  BufferLease client_buffer_;
  BufferLease server_buffer_;
  // How long the client has been silent where the next move is its own (mid-request, or idle in
  // a transaction), and how long the server has owed an answer.
  std::uint32_t client_silent_ms_ = 0;
  std::uint32_t query_waited_ms_ = 0;
  std::uint32_t suspect_after_ms_ = 0;  // when the server is next suspected, if still silent
  Drain drain_ = Drain::none;
  // The index of the worker the session runs on (ProxyService::workers(), at most 128 of them),
  // once it has begun there; while it moves, kInTransit with the index of the worker it goes to.
  // Read from other threads (at_home), written by the session's worker before the move and by
  // the arrival after it.
  std::atomic<std::uint8_t> home_{0};
  static constexpr std::uint8_t kInTransit = 0x80;
  bool ending_started_ : 1 = false;     // the ending coroutine runs
  bool park_requested_ : 1 = false;     // the idle sweep cancelled the read to park
  bool move_requested_ : 1 = false;     // the sweep cancelled the read to move (request_move)
  bool recently_active_ : 1 = false;    // a transaction ended since the last idle sweep
  bool lingering_ : 1 = false;          // listed with the worker's LingerSweep
  bool server_input_lost_ : 1 = false;  // a server read completed after the relay stopped
  bool settings_changed_ : 1 = false;   // SQL changed settings: read back at the turn's end
  bool client_sent_ : 1 = false;        // the client sent bytes since the last sweep
  bool server_answered_ : 1 = false;    // a ReadyForQuery came since the last sweep
  bool query_cancelled_ : 1 = false;    // pool.query_timeout sent a cancel
  bool parked_watched_ : 1 = false;     // listed with the sweep's parked sessions
  bool idle_timed_out_ : 1 = false;     // idle past pool.client_idle_timeout: the wake ends it
  bool pushed_out_ : 1 = false;  // a newer connection took its startup slot (StartupGate)
  bool counted_ : 1 = false;     // authenticated: counted in listen.max_client_connections
  bool has_cancel_key_ : 1 = false;  // cancel_key_ is registered
  // The pending client read's rule found a whole request: no second scan needs to say so.
  bool request_whole_ : 1 = false;
};

std::string_view to_string(ClientSession::Phase phase);

template <typename Coroutine>
void ClientSession::spawn(Coroutine coroutine) {
  // A named lambda, not a temporary inside the call: see the GCC 12 note above.
  auto task = [self = shared_from_this(), coroutine] { return (self.get()->*coroutine)(); };
  boost::asio::co_spawn(stream_.get_executor(), std::move(task), boost::asio::detached);
}

template <typename Action>
void ClientSession::at_home(Action action) {
  const auto& workers = service_.workers();
  if (workers.empty()) {
    // Without the workers' list sessions never move: the stream's loop is the session's.
    return boost::asio::post(stream_.get_executor(),
                             [self = shared_from_this(), action] { action(*self); });
  }
  // On its way to another worker, the session is looked for there, behind its arrival (posted
  // right after kInTransit was stored: should this run in between, it is posted there again).
  const auto home = home_.load(std::memory_order_acquire);
  boost::asio::post(workers[home & ~kInTransit], [self = shared_from_this(), action] {
    // Posted before the session moved away, or while it moved: follow it.
    const auto home = self->home_.load(std::memory_order_acquire);
    if ((home & kInTransit) != 0 || !self->service_.workers()[home].running_in_this_thread()) {
      return self->at_home(action);
    }
    action(*self);
  });
}

template <auto Member, typename... Bound>
auto ClientSession::completion(Io io, Bound... bound) {
  pending_ |= io;
  return [self = shared_from_this(), io, bound...](auto... results) mutable {
    self->pending_ &= static_cast<std::uint8_t>(~io);
    if (self->stop_) {
      self->absorb_after_stop(io, results...);
      return self->continue_ending();
    }
    (self.get()->*Member)(std::move(results)..., bound...);
  };
}

}  // namespace pgvigil::proxy
