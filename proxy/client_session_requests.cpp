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
//
// This file: client to server. The answers are in client_session_answers.cpp.

#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <functional>
#include <utility>

#include "proxy/client_session.hpp"
#include "proxy/linger_sweep.hpp"
#include "proxy/relay/server_side.hpp"
#include "proxy/relay/turn_rules.hpp"
#include "proxy/wire/extended_query.hpp"
#include "proxy/wire/frame_decoder.hpp"
#include "proxy/wire/protocol.hpp"

namespace pgvigil::proxy {
namespace asio = boost::asio;
using pool::Clock;
using pool::Death;
using pool::EvictionReason;
using AfterClaim = stream::SocketStream::AfterClaim;

void ClientSession::park() {
  // A drain that began while the session was busy (say, writing its startup reply) cancelled
  // nothing: end now rather than wait for a client that may stay silent.
  if (drain_ != Drain::none) return spawn(&ClientSession::finish_for_shutdown);
  client_buffer_.give_back();
  // A client without named statements keeps no statement records while it is quiet.
  if (statements_ && !statements_->holds_statements()) statements_.reset();
  if (occasional_ && occasional_->empty()) occasional_.reset();
  // The client's idleness is timed from here (pool.client_idle_timeout).
  client_silent_ms_ = 0;
  if (route_ && route_->settings.client_idle_timeout.count() > 0 && !parked_watched_) {
    parked_watched_ = true;
    LingerSweep::add_parked(shared_from_this());
  }
  // Bytes that arrived while nobody waited are reported by the wait itself: Asio re-arms the
  // edge-triggered epoll registration (EPOLL_CTL_MOD) when a wait starts. A plain handler,
  // not a coroutine, so that an idle client holds no coroutine frame.
  stream_.async_wait(stream::SocketStream::Ready::read,
                     completion<&ClientSession::on_parked_wake>(Io::client_wait));
}

void ClientSession::on_parked_wake(boost::system::error_code ec) {
  if (ec && drain_ != Drain::none) return spawn(&ClientSession::finish_for_shutdown);
  if (ec && idle_timed_out_) return fail(idle_session_error());
  if (ec) return close();
  start_relay();
}

void ClientSession::start_relay() {
  client_buffer_.take();
  watch_by_sweep();
  if (auto* input = occasional(&Occasional::pending_input)) {
    // Bytes read during authentication go first (at most a buffer's worth: a client does not
    // send more before it has seen ReadyForQuery).
    auto buffer = client_buffer_.span();
    const auto size = std::min(input->size(), buffer.size());
    std::copy_n(input->begin(), size, buffer.begin());
    occasional_->pending_input.reset();
    return on_client_bytes(size);
  }
  read_client();
}

void ClientSession::watch_by_sweep() {
  // Session pooling keeps its reads (and buffers) for the whole session, as it keeps its server
  // connection, but its waits are bounded all the same: a request the server leaves unanswered
  // makes the server suspect, and a server found down ends the session.
  if (!lingering_) {
    lingering_ = true;
    LingerSweep::add(shared_from_this());
  }
}

void ClientSession::read_client() {
  // Bytes of an unfinished request kept in front of the buffer: the read goes after them, and its
  // rule sees the scanner as it is past them.
  const auto kept = kept_client_bytes_;
  request_whole_ = false;
  // The rule runs inside the read, while its completion holds the session.
  const auto whole = [this] { request_whole_ = true; };
  if (kept > 0) {
    auto scanner = forwarder_.scanner();
    scanner.scan(client_buffer_.span().first(kept), [](const relay::MessageHeader&) { return true; });
    return stream_.async_read_some(client_buffer_.span().subspan(kept), AfterClaim::wait,
                                   relay::RequestEnded{scanner, whole},
                                   completion<&ClientSession::on_client_read>(Io::client_read));
  }
  // A read that ends a request claims the socket drained, so the next read (started right after
  // forwarding) waits without a system call that would fail. What finds a FIN that came with
  // that request, which raises no further event: writing the answer to a client that closed its
  // socket (the reset does raise one), parking the session after its transaction (a new wait
  // looks at the socket), or client_left_unnoticed() when the session keeps its server
  // connection after an answer.
  stream_.async_read_some(client_buffer_.span(), AfterClaim::wait,
                          relay::RequestEnded{forwarder_.scanner(), whole},
                          completion<&ClientSession::on_client_read>(Io::client_read));
}

void ClientSession::on_client_read(boost::system::error_code ec, std::size_t size) {
  if (ec == asio::error::operation_aborted) {
    if (drain_ != Drain::none) return end_after_io({Ending::shutdown, {}, {}});
    if (park_requested_) {
      park_requested_ = false;
      return park();
    }
    if (move_requested_) {
      move_requested_ = false;
      return move_to_worker();
    }
  }
  if (ec) return end_after_io({Ending::quit, {}, {}});
  if (park_requested_ || move_requested_) {
    // The client spoke before the sweep's cancel landed, and the sweep has let go of it.
    park_requested_ = false;
    if (move_requested_) {
      move_requested_ = false;
      occasional_->moving_to = nullptr;
    }
    watch_by_sweep();
  }
  client_sent_ = true;
  const bool request_whole = request_whole_;
  request_whole_ = false;
  on_client_bytes(std::exchange(kept_client_bytes_, 0) + size, request_whole);
}

void ClientSession::on_client_bytes(std::size_t size, bool request_whole) {
  if (pending(Io::turn_end)) {
    // The connection is on its way back (a cancel lands, settings are read back): hold them.
    held_client_bytes_ = static_cast<std::uint32_t>(size);
    return;
  }
  if (!server_) {
    // A goodbye between transactions needs no server connection.
    if (forwarder_.at_boundary() && client_buffer_.span()[0] == 'X') {
      return end_after_io({Ending::quit, {}, {}});
    }
    if (!request_whole && request_incomplete(size)) {
      kept_client_bytes_ = static_cast<std::uint32_t>(size);
      return read_client();
    }
    if (!server_ready_now()) {
      enter(Phase::waiting_for_server, "a request arrived");
      if (!server_ && route_->pool->nothing_idle()) return wait_for_server(size);
      return start_acquire(size);
    }
  }
  forward_to_server(size);
}

bool ClientSession::request_incomplete(std::size_t size) {
  // Only from a message boundary, and while the buffer has room: a request larger than the
  // buffer streams to the server as it comes.
  if (!forwarder_.at_boundary() || size >= client_buffer_.span().size()) return false;
  auto scanner = forwarder_.scanner();
  int headers = 0;
  int first_end = 0;  // the ordinal of the first header that ends a request
  const auto verdict =
      scanner.scan(client_buffer_.span().first(size), [&](const relay::MessageHeader& header) {
        ++headers;
        // Parse, Bind, Describe, Execute and Close wait for their Sync (or a Flush); anything
        // else is answered on its own.
        const auto type = header.type;
        if (first_end == 0 && type != 'P' && type != 'B' && type != 'D' && type != 'E' &&
            type != 'C') {
          first_end = headers;
        }
        return true;
      });
  // A bad length is the forwarder's to refuse.
  if (verdict != relay::MessageScanner::Verdict::ok) return false;
  // That message is whole when another began after it, or when the bytes end with it.
  return first_end == 0 || (first_end == headers && !scanner.at_boundary());
}

bool ClientSession::server_ready_now() {
  if (route_->server_parameters.empty()) return false;
  server_ = route_->pool->try_checkout_now();
  // A connection that carries other settings gets them in acquire_server().
  return server_ && relay::carries(*server_, settings_);
}

void ClientSession::wait_for_server(std::size_t size) {
  route_->pool->wait_for_connection(route_->checkout_timeout,
                                    completion<&ClientSession::on_checkout>(Io::checkout, size));
}

void ClientSession::on_checkout(pool::CheckoutResult result, std::size_t size) {
  if (const auto* error = std::get_if<pool::CheckoutError>(&result)) {
    return refuse_request(checkout_failure(*error), size);
  }
  server_ = std::get<pool::Lease>(std::move(result));
  if (!relay::carries(*server_, settings_)) return start_acquire(size);
  forward_to_server(size);
}

void ClientSession::start_acquire(std::size_t size) {
  auto task = [self = shared_from_this()] { return self->acquire_server(); };
  asio::co_spawn(stream_.get_executor(), std::move(task),
                 completion<&ClientSession::on_acquired>(Io::checkout, size));
}

void ClientSession::on_acquired(std::exception_ptr exception, std::optional<ClientError> error,
                                std::size_t size) {
  if (exception) return end_after_io({Ending::failure, internal_failure(exception), {}});
  if (error) return refuse_request(std::move(*error), size);
  forward_to_server(size);
}

bool ClientSession::accept_client_message(const relay::MessageHeader& header,
                                          std::span<const char> whole, relay::Edit& edit) {
  if (!wire::is_frontend_message_type(header.type) || header.type == 'p') {
    occasional().stop_after_forward = std::make_unique<Stop>(
        Stop{Ending::client_violation,
             ClientError{sqlstate::kProtocolViolation,
                         "invalid frontend message type " +
                             std::to_string(static_cast<unsigned char>(header.type)),
                         "", ""},
             std::nullopt});
    return false;
  }
  if (!tracker_.on_client_message(header)) {  // Terminate: pgvigil keeps the server connection
    occasional().stop_after_forward =
        std::make_unique<Stop>(Stop{Ending::quit, std::nullopt, std::nullopt});
    return false;
  }
  if (transaction_pooling() && !pin_ && (header.type == 'Q' || header.type == 'P')) {
    look_for_session_state(header, whole);
  }
  if (!statements_ || statements_->on_client_message(header, whole, edit, server_statements())) {
    return true;
  }
  occasional().stop_after_forward = std::make_unique<Stop>(
      Stop{Ending::client_violation,
           ClientError{sqlstate::kProtocolViolation,
                       std::string("malformed ") + header.type + " message", "", ""},
           std::nullopt});
  return false;
}

void ClientSession::forward_to_server(std::size_t size) {
  enter(Phase::relaying, "forwarding the client's request");
  // At a lease's first request, so that the statements' queue sees every answer the lease owes.
  if (!statements_ && transaction_pooling() && route_->settings.max_prepared_statements > 0) {
    statements_ = std::make_unique<relay::StatementRelay>(
        route_->statement_texts,
        static_cast<std::size_t>(route_->settings.max_prepared_statements));
    forwarder_.show_whole_at_any_size();
  }
  // Sessions of one worker run one at a time and each sends its plan before it returns (or
  // copies what is left), so one plan per worker serves them all.
  thread_local relay::ForwardPlan plan;
  const auto verdict = forwarder_.take(
      client_buffer_.span().first(size), plan,
      [this](const relay::MessageHeader& header, std::span<const char> whole, relay::Edit& edit) {
        return accept_client_message(header, whole, edit);
      });
  if (verdict == relay::RequestForwarder::Verdict::bad_length) {
    return end_after_io({Ending::client_violation,
                         ClientError{sqlstate::kProtocolViolation,
                                     "invalid message length (above listen.max_message_bytes or "
                                     "below 4)",
                                     "", ""},
                         std::nullopt});
  }
  // A refused message (Occasional::stop_after_forward) ends the relay once what came before it is
  // sent.
  if (plan.empty()) return after_forward_to_server();
  route_->relayed->add_bytes_to_server(plan.bytes());
  boost::system::error_code ec;
  bool needs_read = false;
  const auto written = server_->stream().try_write(plan.pieces(), ec, needs_read);
  if (ec) {
    return end_after_io(server_lost(server_->diagnose_failure(true, "writing to server")));
  }
  if (written < plan.bytes()) return write_rest_of_plan(plan, written, Toward::server);
  after_forward_to_server();
}

void ClientSession::write_rest_of_plan(relay::ForwardPlan& plan, std::size_t written,
                                       Toward toward) {
  // A plan that is one piece of the read's buffer (nearly always) is written on from there;
  // any other is copied, since the worker's plan serves the next session at once.
  std::size_t from = 0;
  std::size_t to = 0;
  const auto buffer = toward == Toward::server ? client_buffer_.span() : server_buffer_.span();
  const auto unsent_member =
      toward == Toward::server ? &Occasional::unsent : &Occasional::unsent_to_client;
  const auto pieces = plan.pieces();
  const std::less_equal<const char*> not_after;  // a total order, unlike <= on pointers
  if (pieces.empty() && occasional(unsent_member)) {
    // Everything to write is in `unsent` already (answers pgvigil made, then the server's bytes):
    // from == to says so.
  } else if (pieces.size() == 1 && not_after(buffer.data(), pieces[0].data()) &&
             not_after(pieces[0].data() + pieces[0].size(), buffer.data() + buffer.size())) {
    from = static_cast<std::size_t>(pieces[0].data() - buffer.data()) + written;
    to = from - written + pieces[0].size();
  } else {
    // Made only here, so that a rest written from the read's buffer allocates nothing.
    auto& unsent = occasional().*unsent_member;
    unsent = std::make_unique<std::string>();
    unsent->reserve(plan.bytes() - written);
    std::size_t skip = written;
    for (const auto& piece : pieces) {
      const auto drop = std::min(skip, piece.size());
      skip -= drop;
      unsent->append(piece.data() + drop, piece.size() - drop);
    }
  }
  if (toward == Toward::client) {
    auto task = [self = shared_from_this(), from, to] {
      return self->write_rest_to_client(from, to);
    };
    asio::co_spawn(stream_.get_executor(), std::move(task),
                   completion<&ClientSession::on_client_written>(Io::client_write));
    return;
  }
  auto task = [self = shared_from_this(), from, to] {
    return self->write_rest_to_server(from, to);
  };
  asio::co_spawn(stream_.get_executor(), std::move(task),
                 completion<&ClientSession::on_server_written>(Io::server_write));
}

void ClientSession::on_server_written(std::exception_ptr exception, boost::system::error_code ec) {
  if (exception) return end_after_io({Ending::failure, internal_failure(exception), {}});
  if (ec) {
    return end_after_io(server_lost(server_->diagnose_failure(true, "writing to server")));
  }
  after_forward_to_server();
}

void ClientSession::after_forward_to_server() {
  if (auto* refused = occasional(&Occasional::stop_after_forward)) {
    auto stop = std::move(*refused);
    occasional_->stop_after_forward.reset();
    return end_after_io(std::move(stop));
  }
  if (statements_ && statements_->made_answer_due()) send_made_answers();
  // Not while the server buffer is still being sent to a slow client: that write re-arms the
  // server read when it is done (after_forward_to_client), so results never interleave.
  if (!pending(Io::server_read) && !pending(Io::client_write)) read_server();
  read_client();
}

void ClientSession::send_made_answers() {
  // Not into the middle of a server message, nor beside a write already under way: the next
  // server read makes them then (its plan ends with what is due).
  if (pending(Io::client_write) || !responses_.planned_to_boundary()) return;
  auto& unsent = occasional().unsent_to_client;
  if (!unsent) unsent = std::make_unique<std::string>();
  statements_->take_made([&unsent](std::string_view made) { unsent->append(made); });
  boost::system::error_code ec;
  bool needs_read = false;
  const auto written = stream_.try_write(std::span<const char>(*unsent), ec, needs_read);
  if (ec) return end_after_io({drain_ != Drain::none ? Ending::shutdown : Ending::quit, {}, {}});
  route_->relayed->add_bytes_to_client(written);
  // A client that has left so much unread that a few bytes do not fit is not waiting for them
  // yet: the rest goes before the next server bytes.
  unsent->erase(0, written);
  if (unsent->empty()) unsent.reset();
}

relay::ServerStatements& ClientSession::server_statements() {
  return relay::server_side(*server_).statements;
}
}  // namespace pgvigil::proxy
