// The relay, server to client: answers forwarded as they come, the end of a transaction (the
// server connection goes back in transaction pooling) and the sweep that parks quiet clients.
// Client to server is in client_session_requests.cpp.

#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include "proxy/client_session.hpp"
#include "proxy/relay/turn_rules.hpp"

namespace pgvigil::proxy {
namespace asio = boost::asio;
using pool::Clock;
using pool::Death;
using pool::EvictionReason;
using AfterClaim = stream::SocketStream::AfterClaim;

void ClientSession::read_server() {
  server_buffer_.take();
  // The server's claim is checked by the peek before every lending in transaction pooling;
  // otherwise the next read tries first, which finds a FIN that came with the answer.
  server_->stream().async_read_some(server_buffer_.span(), AfterClaim::try_first,
                                    relay::AnswerEnded{},
                                    completion<&ClientSession::on_server_read>(Io::server_read));
}

void ClientSession::on_server_read(boost::system::error_code ec, std::size_t size) {
  if (ec == asio::error::operation_aborted && drain_ != Drain::none) {
    return end_after_io({Ending::shutdown, {}, {}});
  }
  if (ec) {
    return end_after_io(
        server_lost(server_->diagnose_failure(tracker_.pending_ready() > 0, "relaying")));
  }
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
  bool needs_read = false;
  const auto written = stream_->try_write(bytes, ec, needs_read);
  if (ec) return end_after_io({drain_ != Drain::none ? Ending::shutdown : Ending::quit, {}, {}});
  if (written < size) {
    auto task = [self = shared_from_this(), written, size] {
      return self->write_rest_to_client(written, size);
    };
    asio::co_spawn(stream_->get_executor(), std::move(task),
                   completion<&ClientSession::on_client_written>(Io::client_write));
    return;
  }
  after_forward_to_client();
}

void ClientSession::on_client_written(std::exception_ptr exception, boost::system::error_code ec) {
  if (exception) return end_after_io({Ending::failure, internal_failure(exception), {}});
  if (ec) return end_after_io({drain_ != Drain::none ? Ending::shutdown : Ending::quit, {}, {}});
  after_forward_to_client();
}

void ClientSession::after_forward_to_client() {
  if ((transaction_pooling() || drain_ != Drain::none) && between_requests()) {
    return transaction_done();
  }
  if (server_scanner_.at_boundary() && tracker_.pending_ready() == 0) {
    enter(Phase::pinned, tracker_.status() == 'I' ? "session pooling keeps the connection"
                                                  : "inside a transaction");
    if (stream_->drain_claimed() && client_left_unnoticed()) {
      return end_after_io({Ending::quit, {}, {}});
    }
  }
  if (relayed_to_client_ >= kMetricsFlushBytes) flush_relay_metrics();
  read_server();
}

// Every request is answered and the server connection stays with this client (session pooling,
// or a transaction still open). If the client's last request came with its FIN, the pending
// read will never report it, and the connection would stay leased: look once.
bool ClientSession::client_left_unnoticed() {
  const auto peeked = stream_->peek();
  return peeked == stream::SocketStream::Peek::closed ||
         peeked == stream::SocketStream::Peek::failed;
}

bool ClientSession::between_requests() const {
  return server_scanner_.at_boundary() &&
         tracker_.idle_and_answered(forwarder_.planned_to_boundary());
}

void ClientSession::transaction_done() {
  flush_relay_metrics();
  if (drain_ != Drain::none) return end_after_io({Ending::shutdown, {}, {}});
  recently_active_ = true;
  if (cancels_in_flight_ > 0) {
    // A cancel being sent for this connection must land before anyone else may use it.
    auto task = [self = shared_from_this()] { return self->wait_for_cancels(); };
    asio::co_spawn(stream_->get_executor(), std::move(task),
                   completion<&ClientSession::on_cancels_landed>(Io::cancel_wait));
    return;
  }
  give_server_back();
}

void ClientSession::on_cancels_landed(std::exception_ptr exception) {
  if (exception) return end_after_io({Ending::failure, internal_failure(exception), {}});
  give_server_back();
}

void ClientSession::give_server_back() {
  return_server(std::nullopt);
  server_buffer_.give_back();
  enter(Phase::idle, "transaction done");
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
  if (stop_ || pending(Io::client_wait)) {
    lingering_ = false;
    return false;
  }
  // Busy (a transaction runs, or the client was served since the last sweep): look again later.
  if (server_ || !pending(Io::client_read) || recently_active_) {
    recently_active_ = false;
    return true;
  }
  // Quiet for a whole sweep: give the buffer back and wait for the client without one.
  park_requested_ = true;
  stream_->cancel();
  lingering_ = false;
  return false;
}

}  // namespace pgvigil::proxy
