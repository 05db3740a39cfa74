// The relay, server to client: answers forwarded as they come, the end of a transaction (the
// server connection goes back in transaction pooling) and the sweep that parks quiet clients.
// Client to server is in client_session_requests.cpp.

#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include "proxy/client_session.hpp"
#include "proxy/relay/server_side.hpp"
#include "proxy/relay/turn_rules.hpp"
#include "proxy/wire/backend_parser.hpp"

namespace pgvigil::proxy {
namespace asio = boost::asio;
using pool::Clock;
using pool::Death;
using pool::EvictionReason;
using AfterClaim = stream::SocketStream::AfterClaim;

void ClientSession::read_server() {
  server_buffer_.take();
  // The server's claim is checked before every lending in transaction pooling (quick_check);
  // otherwise the next read tries first, which finds a FIN that came with the answer, unless the
  // event loop vouches that nothing came (SocketStream::look()).
  server_->stream().async_read_some(server_buffer_.span(), AfterClaim::try_first,
                                    relay::AnswerEnded{},
                                    completion<&ClientSession::on_server_read>(Io::server_read));
}

void ClientSession::on_server_read(boost::system::error_code ec, std::size_t size) {
  if (ec == asio::error::operation_aborted && drain_ != Drain::none) {
    return end_after_io({Ending::shutdown, {}, {}});
  }
  if (ec) {
    // Ended by the pool, which found the server down.
    if (const auto* death = server_->condemned()) return end_after_io(server_lost(*death));
    return end_after_io(
        server_lost(server_->diagnose_failure(tracker_.pending_ready() > 0, "relaying")));
  }
  server_->mark_alive();
  // Sessions of one worker run one at a time and each sends its plan before it returns (or
  // copies what is left), so one plan per worker serves them all.
  thread_local relay::ForwardPlan plan;
  auto* statements = statements_ ? &server_statements() : nullptr;
  const auto verdict =
      responses_.take(server_buffer_.span().first(size), plan,
                      [this, statements](const relay::MessageHeader& header,
                                         std::span<const char> whole, relay::Edit& edit) {
                        return on_server_message(header, whole, edit, statements);
                      });
  if (verdict == relay::ResponseForwarder::Verdict::bad_length) {
    return end_after_io(
        server_lost({EvictionReason::server_error, "malformed message from server", Clock::now()}));
  }
  if (verdict == relay::ResponseForwarder::Verdict::stopped) {
    // An answer the requests pgvigil sent do not account for: what the connection holds is
    // no longer known.
    return end_after_io(
        server_lost({EvictionReason::server_error,
                     "server answer out of order for the statements pgvigil keeps", Clock::now()}));
  }
  // Answers pgvigil made whose turn comes after the last message the server sent.
  if (statements && responses_.planned_to_boundary()) {
    statements_->take_made([](std::string_view made) { plan.add_copy(made); });
  }
  if (plan.empty()) return after_forward_to_client();
  route_->relayed->add_bytes_to_client(plan.bytes());
  if (auto* unsent = occasional(&Occasional::unsent_to_client)) {
    // Made answers the client did not take yet go first (send_made_answers).
    for (const auto& piece : plan.pieces()) unsent->append(piece.data(), piece.size());
    plan.clear();
    return write_rest_of_plan(plan, 0, Toward::client);
  }
  bool needs_read = false;
  const auto written = stream_.try_write(plan.pieces(), ec, needs_read);
  if (ec) return end_after_io({drain_ != Drain::none ? Ending::shutdown : Ending::quit, {}, {}});
  if (written < plan.bytes()) return write_rest_of_plan(plan, written, Toward::client);
  after_forward_to_client();
}

bool ClientSession::on_server_message(const relay::MessageHeader& header,
                                      std::span<const char> whole, relay::Edit& edit,
                                      relay::ServerStatements* statements) {
  tracker_.on_server_message(header);
  if (header.type == 'Z') server_answered_ = true;
  if (header.type == 'S') adopt_reported_setting(whole);
  if (occasional(&Occasional::pending_set) && (header.type == 'C' || header.type == 'Z')) {
    settle_pending_set(whole);
  }
  if (header.type == 'E' && server_->role().role == pool::ServerRole::primary) {
    note_error_on_primary(whole);
  }
  if (!statements) return true;
  if (header.type == 'E' || header.type == 'C') note_statement_outcome(header.type, whole);
  using Disposition = relay::ResponseQueue::Disposition;
  const auto disposition = statements_->on_server_message(
      header.type, *statements, [&edit](std::string_view made) { edit.insert(made); });
  if (disposition == Disposition::swallow) edit.drop();
  return disposition != Disposition::desync;
}

void ClientSession::note_error_on_primary(std::span<const char> whole) {
  const auto body = relay::body_of(whole);
  if (body.empty()) return;
  // The client may have asked for a read-only transaction itself, or the server may no longer
  // take writes (demoted, or made read-only by an operator): the pool asks which.
  const auto error = wire::parse_error_response(body);
  if (error && error->sqlstate == "25006") server_->role_suspect = true;
}

void ClientSession::note_statement_outcome(char type, std::span<const char> whole) {
  const auto body = relay::body_of(whole);
  if (body.empty()) return;
  if (type == 'E') {
    if (const auto error = wire::parse_error_response(body)) {
      statements_->on_server_error(error->sqlstate, server_statements());
    }
    return;
  }
  // Only tags that can close statements are worth reading: DEALLOCATE ALL, DISCARD ALL.
  if (body[0] != 'D') return;
  statements_->on_command_complete(std::string_view(body.data(), body.size() - 1),
                                   server_statements());
}

void ClientSession::on_client_written(std::exception_ptr exception, boost::system::error_code ec) {
  if (exception) return end_after_io({Ending::failure, internal_failure(exception), {}});
  if (ec) return end_after_io({drain_ != Drain::none ? Ending::shutdown : Ending::quit, {}, {}});
  after_forward_to_client();
}

void ClientSession::after_forward_to_client() {
  if (((transaction_pooling() && !pin_) || drain_ != Drain::none) && between_requests()) {
    return transaction_done();
  }
  if (responses_.at_boundary() && tracker_.pending_ready() == 0) {
    enter(Phase::pinned, tracker_.status() != 'I' ? "inside a transaction"
                         : pin_                   ? "session state pins the connection"
                                                  : "session pooling keeps the connection");
    if (stream_.drain_claimed() && client_left_unnoticed()) {
      return end_after_io({Ending::quit, {}, {}});
    }
  }
  if (!pending(Io::server_read)) read_server();
}

// Every request is answered and the server connection stays with this client (session pooling,
// or a transaction still open). If the client's last request came with its FIN, the pending
// read will never report it, and the connection would stay leased: look once.
bool ClientSession::client_left_unnoticed() {
  const auto peeked = stream_.peek();
  return peeked == stream::SocketStream::Peek::closed ||
         peeked == stream::SocketStream::Peek::failed;
}

bool ClientSession::between_requests() const {
  return responses_.at_boundary() && tracker_.idle_and_answered(forwarder_.planned_to_boundary()) &&
         (!statements_ || statements_->answered());
}

void ClientSession::transaction_done() {
  flush_relay_metrics();
  if (drain_ != Drain::none) return end_after_io({Ending::shutdown, {}, {}});
  recently_active_ = true;
  if (cancels_in_flight_ > 0 || settings_changed_) {
    // Not yet: a cancel being sent for this connection must land before anyone else may use
    // it, and settings the client changed in SQL are read back while it is still the client's.
    auto task = [self = shared_from_this()] { return self->settle_turn(); };
    asio::co_spawn(stream_.get_executor(), std::move(task),
                   completion<&ClientSession::on_turn_settled>(Io::turn_end));
    return;
  }
  give_server_back();
}

void ClientSession::on_turn_settled(std::exception_ptr exception) {
  if (exception) return end_after_io({Ending::failure, internal_failure(exception), {}});
  if (server_ && pin_) {
    // The settings could not be read back: the connection stays with the client.
    after_forward_to_client();
    return take_held_client_bytes();
  }
  give_server_back();
}

void ClientSession::give_server_back() {
  if (statements_) statements_->lease_ended();
  return_server(std::nullopt);
  server_buffer_.give_back();
  enter(Phase::idle, "transaction done");
  take_held_client_bytes();
}

void ClientSession::take_held_client_bytes() {
  if (held_client_bytes_ == 0) return;
  const auto size = held_client_bytes_;
  held_client_bytes_ = 0;
  on_client_bytes(size);
}

void ClientSession::flush_relay_metrics() {
  const auto counts = tracker_.take_counts();
  route_->relayed->add_counts(counts.queries, counts.transactions);
}

}  // namespace pgvigil::proxy
