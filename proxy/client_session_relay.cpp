// The relay half of ClientSession: bytes both ways, as plain Asio callbacks on the pool's worker.
//
// At most one read per direction is pending. A read from the client is forwarded to the server
// with one non-blocking send, then the next client read is started at once, so a client that
// pipelines (or streams COPY data) while a result comes back cannot deadlock the pair. Only
// when a send does not take everything (a slow peer) does a coroutine wait for room, with that
// direction's reads paused until it is done: a slow client slows its own server connection
// and nobody else's.
//
// In transaction pooling the server connection goes back to the pool when the server's
// ReadyForQuery says idle and every request was answered. The client read stays pending, with
// its buffer (lingering), because most clients send their next query within microseconds and
// re-arming a wait costs a system call; the worker's LingerSweep parks sessions that stay
// quiet, so an idle client ends up holding no buffer.

#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include "proxy/client_session.hpp"
#include "proxy/linger_sweep.hpp"
#include "proxy/wire/frame_decoder.hpp"
#include "proxy/wire/protocol.hpp"

namespace pgvigil::proxy {
namespace asio = boost::asio;
using pool::Clock;
using pool::Death;
using pool::EvictionReason;

namespace {

// Relayed byte counts reach the metrics per transaction, or sooner during a long COPY or result.
constexpr std::uint32_t kMetricsFlushBytes = 1 << 20;

ClientError named_statement_refusal(const std::string& database) {
  return {sqlstate::kFeatureNotSupported,
          "named prepared statements are not supported in transaction pooling mode",
          "Database \"" + database +
              "\" uses pool_mode transaction, where each transaction may run on another server "
              "connection.",
          "Use unnamed statements (JDBC: prepareThreshold=0), or set pool_mode: session for "
          "this database."};
}

}  // namespace

template <typename Coroutine>
void ClientSession::spawn(Coroutine coroutine) {
  // A named lambda, not a temporary inside the call: see the GCC 12 note in the header.
  auto task = [self = shared_from_this(), coroutine] { return (self.get()->*coroutine)(); };
  asio::co_spawn(stream_->get_executor(), std::move(task), asio::detached);
}

// --- client to server -----------------------------------------------------------------------

void ClientSession::park() {
  // A drain that began while the session was busy (say, writing its startup reply) cancelled
  // nothing: end now rather than wait for a client that may stay silent.
  if (shutdown_requested_) return spawn(&ClientSession::finish_for_shutdown);
  parked_ = true;
  client_claim_unchecked_ = false;  // the wait below looks at the socket
  client_buffer_.give_back();
  stream_->async_wait_readable([self = shared_from_this()](boost::system::error_code ec) {
    self->parked_ = false;
    if (ec && self->shutdown_requested_) return self->spawn(&ClientSession::finish_for_shutdown);
    if (ec) return self->close();
    // Bytes that arrived while nobody waited are reported by the wait itself: Asio re-arms the
    // edge-triggered epoll registration (EPOLL_CTL_MOD) when a wait starts.
    self->start_relay();
  });
}

void ClientSession::start_relay() {
  client_buffer_.take();
  // Session pooling keeps its reads (and buffers) for the whole session, as it keeps its server
  // connection: nothing to sweep.
  if (!lingering_ && transaction_pooling()) {
    lingering_ = true;
    LingerSweep::add(shared_from_this());
  }
  if (pending_input_) {
    // Bytes read during authentication go first (at most a buffer's worth: a client does not
    // send more before it has seen ReadyForQuery).
    auto buffer = client_buffer_.span();
    const auto size = std::min(pending_input_->size(), buffer.size());
    std::copy_n(pending_input_->begin(), size, buffer.begin());
    pending_input_.reset();
    return on_client_bytes(size);
  }
  read_client();
}

void ClientSession::read_client() {
  client_reading_ = true;
  ++io_in_flight_;
  // A read that ends a request claims the socket drained, so the next read (started right after
  // forwarding) waits without a system call that would fail. What finds a FIN that came with
  // that request, which raises no further event: writing the answer to a client that closed its
  // socket (the reset does raise one), parking the session after its transaction (a new wait
  // looks at the socket), or client_left_unnoticed() when the session keeps its server
  // connection after an answer.
  const relay::RequestEnded turn_ended{client_scanner_, &client_claim_unchecked_};
  stream_->async_read_some(client_buffer_.span(), turn_ended, [self = shared_from_this()](
                                                      boost::system::error_code ec, std::size_t size) {
    self->client_reading_ = false;
    --self->io_in_flight_;
    self->on_client_read(ec, size);
  });
}

void ClientSession::on_client_read(boost::system::error_code ec, std::size_t size) {
  if (stop_) return continue_ending();
  if (ec == asio::error::operation_aborted) {
    if (shutdown_requested_) return end_after_io({Ending::shutdown, {}, {}});
    if (park_requested_) {
      park_requested_ = false;
      return park();
    }
  }
  if (ec) return end_after_io({Ending::quit, {}, {}});
  park_requested_ = false;  // the client spoke before the sweep's cancel landed
  on_client_bytes(size);
}

void ClientSession::on_client_bytes(std::size_t size) {
  if (returning_server_) {
    // The connection is on its way back (a cancel is still being sent): hold the bytes.
    held_client_bytes_ = static_cast<std::uint32_t>(size);
    return;
  }
  if (!server_) {
    // A goodbye between transactions needs no server connection.
    if (client_scanner_.at_boundary() && client_buffer_.span()[0] == 'X') {
      return end_after_io({Ending::quit, {}, {}});
    }
    if (!server_ready_now()) {
      if (!server_ && route_->pool->nothing_idle()) return wait_for_server(size);
      return start_acquire(size);
    }
  }
  forward_to_server(size);
}

bool ClientSession::server_ready_now() {
  if (route_->server_parameters.empty()) return false;
  server_ = route_->pool->try_checkout_now();
  // A connection that carries other settings gets them in acquire_server().
  return server_ && server_->carries(settings_);
}

void ClientSession::forward_to_server(std::size_t size) {
  const auto bytes = client_buffer_.span().first(size);
  const bool transaction_mode = transaction_pooling();
  std::size_t forward = size;
  std::optional<Stop> stop;
  const auto verdict = client_scanner_.scan(bytes, [&](const relay::MessageHeader& header) {
    if (!wire::is_frontend_message_type(header.type) || header.type == 'p') {
      stop = Stop{Ending::client_violation,
                  ClientError{sqlstate::kProtocolViolation,
                              "invalid frontend message type " +
                                  std::to_string(static_cast<unsigned char>(header.type)),
                              "", ""},
                  std::nullopt};
    } else if (!tracker_.on_client_message(header, transaction_mode)) {
      stop = tracker_.refusal() == relay::TransactionTracker::Refusal::terminate
                 ? Stop{Ending::quit, std::nullopt, std::nullopt}
                 : Stop{Ending::client_violation, named_statement_refusal(route_->settings.database),
                        std::nullopt};
    } else {
      return true;
    }
    forward = header.start;  // nothing of the refused message reaches the server
    return false;
  });
  if (verdict == relay::MessageScanner::Verdict::bad_length) {
    return end_after_io({Ending::client_violation,
                         ClientError{sqlstate::kProtocolViolation,
                                     "invalid message length (above listen.max_message_bytes or "
                                     "below 4)",
                                     "", ""},
                         std::nullopt});
  }
  if (stop) stop_after_forward_ = std::make_unique<Stop>(std::move(*stop));
  if (forward == 0) return after_forward_to_server();
  relayed_to_server_ += static_cast<std::uint32_t>(forward);
  boost::system::error_code ec;
  bool needs_read = false;
  const auto written = server_->try_relay_write(bytes.first(forward), ec, needs_read);
  if (ec) {
    return end_after_io(server_lost(server_->diagnose_failure(true, "writing to server")));
  }
  if (written < forward) {
    ++io_in_flight_;
    auto task = [self = shared_from_this(), written, forward] {
      return self->write_rest_to_server(written, forward);
    };
    asio::co_spawn(stream_->get_executor(), std::move(task), asio::detached);
    return;
  }
  after_forward_to_server();
}

void ClientSession::after_forward_to_server() {
  if (stop_after_forward_) {
    auto stop = std::move(*stop_after_forward_);
    stop_after_forward_.reset();
    return end_after_io(std::move(stop));
  }
  if (relayed_to_server_ >= kMetricsFlushBytes) flush_relay_metrics();
  // Not while the server buffer is still being sent to a slow client: that write re-arms the
  // server read when it is done (after_forward_to_client), so results never interleave.
  if (!server_reading_ && !writing_to_client_) read_server();
  read_client();
}

// --- server to client -----------------------------------------------------------------------

void ClientSession::read_server() {
  server_buffer_.take();
  server_reading_ = true;
  ++io_in_flight_;
  server_->async_relay_read(
      server_buffer_.span(),
      [self = shared_from_this()](boost::system::error_code ec, std::size_t size) {
        self->server_reading_ = false;
        --self->io_in_flight_;
        self->on_server_read(ec, size);
      });
}

void ClientSession::on_server_read(boost::system::error_code ec, std::size_t size) {
  if (stop_) {
    // Bytes nobody will relay: the connection's state is unknown now.
    if (size > 0 && !ec) server_input_lost_ = true;
    return continue_ending();
  }
  if (ec == asio::error::operation_aborted && shutdown_requested_) {
    return end_after_io({Ending::shutdown, {}, {}});
  }
  if (ec) return end_after_io(server_lost(server_->diagnose_failure(tracker_.pending_ready() > 0,
                                                                     "relaying")));
  server_->mark_alive();
  const auto bytes = server_buffer_.span().first(size);
  const auto verdict = server_scanner_.scan(bytes, [this](const relay::MessageHeader& header) {
    tracker_.on_server_message(header);
    return true;
  });
  if (verdict == relay::MessageScanner::Verdict::bad_length) {
    return end_after_io(
        server_lost({EvictionReason::server_error, "malformed message from server", Clock::now()}));
  }
  relayed_to_client_ += static_cast<std::uint32_t>(size);
  const auto written = stream_->try_write(bytes, ec);
  if (ec) return end_after_io({shutdown_requested_ ? Ending::shutdown : Ending::quit, {}, {}});
  if (written < size) {
    writing_to_client_ = true;
    ++io_in_flight_;
    auto task = [self = shared_from_this(), written, size] {
      return self->write_rest_to_client(written, size);
    };
    asio::co_spawn(stream_->get_executor(), std::move(task), asio::detached);
    return;
  }
  after_forward_to_client();
}

void ClientSession::after_forward_to_client() {
  if ((transaction_pooling() || shutdown_requested_) && between_requests()) {
    return transaction_done();
  }
  if (client_claim_unchecked_ && server_scanner_.at_boundary() && tracker_.pending_ready() == 0 &&
      client_left_unnoticed()) {
    return end_after_io({Ending::quit, {}, {}});
  }
  if (relayed_to_client_ >= kMetricsFlushBytes) flush_relay_metrics();
  read_server();
}

// Every request is answered and the server connection stays with this client (session pooling,
// or a transaction still open). If the client's last request came with its FIN, the pending
// read will never report it, and the connection would stay leased: look once.
bool ClientSession::client_left_unnoticed() {
  client_claim_unchecked_ = false;
  return stream_->peer_closed();
}

bool ClientSession::between_requests() const {
  return server_scanner_.at_boundary() &&
         tracker_.idle_and_answered(client_scanner_.at_boundary());
}

void ClientSession::transaction_done() {
  flush_relay_metrics();
  if (shutdown_requested_) return end_after_io({Ending::shutdown, {}, {}});
  recently_active_ = true;
  if (cancels_in_flight_ > 0) {
    // A cancel being sent for this connection must land before anyone else may use it.
    returning_server_ = true;
    ++io_in_flight_;
    spawn(&ClientSession::return_after_cancels);
    return;
  }
  give_server_back();
}

void ClientSession::give_server_back() {
  return_server(std::nullopt);
  server_buffer_.give_back();
  if (held_client_bytes_ > 0) {
    const auto size = held_client_bytes_;
    held_client_bytes_ = 0;
    on_client_bytes(size);
  }
}

void ClientSession::flush_relay_metrics() {
  const auto counts = tracker_.take_counts();
  route_->relayed->add({.bytes_to_server = relayed_to_server_,
                        .bytes_to_client = relayed_to_client_,
                        .queries = counts.queries,
                        .transactions = counts.transactions});
  relayed_to_server_ = relayed_to_client_ = 0;
}

bool ClientSession::sweep_linger() {
  if (stop_ || parked_) {
    lingering_ = false;
    return false;
  }
  // Busy (a transaction runs, or the client was served since the last sweep): look again later.
  if (server_ || !client_reading_ || recently_active_) {
    recently_active_ = false;
    return true;
  }
  // Quiet for a whole sweep: give the buffer back and wait for the client without one.
  park_requested_ = true;
  stream_->cancel();
  lingering_ = false;
  return false;
}

// --- endings --------------------------------------------------------------------------------

ClientSession::Stop ClientSession::server_lost(const Death& death) {
  return {Ending::server_lost,
          ClientError{sqlstate::kConnectionFailure,
                      "lost the server connection (" + std::string(to_string(death.reason)) + ")",
                      death.detail, "The transaction's outcome is unknown; retry it."},
          death};
}

void ClientSession::end_after_io(Stop stop) {
  if (stop_) return;
  stop_ = std::make_unique<Stop>(std::move(stop));
  flush_relay_metrics();
  // Each pending operation completes (aborted) and comes back through continue_ending().
  if (client_reading_) stream_->cancel();
  if (server_reading_ && server_) server_->detach();
  continue_ending();
}

void ClientSession::continue_ending() {
  if (io_in_flight_ > 0 || ending_started_) return;
  ending_started_ = true;
  client_buffer_.give_back();
  server_buffer_.give_back();
  if (server_input_lost_ && server_) {
    return_server(Death{EvictionReason::dirty_return,
                        "the server sent data after the client's session ended", Clock::now()});
  }
  switch (stop_->ending) {
    case Ending::quit:
      return spawn(&ClientSession::end_session);
    case Ending::shutdown:
      return spawn(&ClientSession::finish_for_shutdown);
    case Ending::client_violation:
    case Ending::server_lost:
    case Ending::failure:
      return spawn(&ClientSession::end_relay_with_error);
  }
}

}  // namespace pgvigil::proxy
