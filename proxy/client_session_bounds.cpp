// The waits a session is held to, timed by its worker's LingerSweep (every 10 ms, by the clock):
// a client silent in the middle of a request (pool.client_request_timeout), idle inside a
// transaction (pool.idle_transaction_timeout) or idle outside one (pool.client_idle_timeout;
// parked sessions are timed every 100 ms) is closed; a request the server has not answered
// within pool.query_timeout is cancelled on the server, and the connection is evicted when the
// cancel goes unanswered too; one unanswered with the server silent for ping.interval makes the
// pool ask the server on another path, and a connection the pool condemned (the server found
// down) ends the session with 08006. The same sweep parks a transaction-pooling session that has been
// quiet for a whole period, so an idle client holds no buffer.

#include <algorithm>
#include <cstdint>

#include "proxy/client_session.hpp"

namespace pgvigil::proxy {
using pool::Clock;
using pool::Death;
using pool::EvictionReason;

namespace {

std::uint32_t add_capped(std::uint32_t total, std::chrono::milliseconds more) {
  const auto sum = static_cast<std::uint64_t>(total) +
                   static_cast<std::uint64_t>(std::max<std::int64_t>(more.count(), 0));
  return static_cast<std::uint32_t>(std::min<std::uint64_t>(sum, UINT32_MAX));
}

std::string milliseconds_text(std::chrono::milliseconds duration) {
  return std::to_string(duration.count()) + " ms";
}

}  // namespace

bool ClientSession::sweep_linger(std::chrono::milliseconds since_last) {
  if (stop_ || pending(Io::client_wait)) {
    lingering_ = false;
    return false;
  }
  if (auto stop = over_a_bound(since_last)) {
    lingering_ = false;
    end_after_io(std::move(*stop));
    return false;
  }
  // Active and between two transactions, on a worker busier than listen.pack_until_busy: it
  // may continue on a less busy worker (client_session_move.cpp).
  if (recently_active_ && request_move()) {
    lingering_ = false;
    return false;
  }
  // Busy (a transaction runs, a request is half in, or the client was served since the last
  // sweep): look again later.
  if (server_ || request_half_in() || !pending(Io::client_read) || recently_active_) {
    recently_active_ = false;
    return true;
  }
  // Quiet for a whole sweep: give the buffer back and wait for the client without one.
  park_requested_ = true;
  stream_.cancel();
  lingering_ = false;
  return false;
}

std::optional<ClientSession::Stop> ClientSession::over_a_bound(
    std::chrono::milliseconds since_last) {
  if (auto stop = client_over_its_bound(since_last)) return stop;
  return server_over_its_bound(since_last);
}

std::optional<ClientSession::Stop> ClientSession::client_over_its_bound(
    std::chrono::milliseconds since_last) {
  const auto& settings = route_->settings;
  // The client owes the rest of a message, or the Sync of extended-protocol messages that the
  // server has all answered (known only where the statement relay counts what is owed)...
  const bool mid_request =
      request_half_in() ||
      (tracker_.unsynced() && statements_ && statements_->answered() && responses_.at_boundary());
  // ...or everything is answered, and the client's transaction is open, or not.
  const bool answered = !mid_request && tracker_.pending_ready() == 0 && responses_.at_boundary();
  const bool idle_in_transaction = server_ && answered && tracker_.status() != 'I';
  const bool idle = answered && !idle_in_transaction;
  const auto bound = mid_request && transaction_pooling() ? settings.client_request_timeout
                     : idle_in_transaction                ? settings.idle_transaction_timeout
                     : idle                               ? settings.client_idle_timeout
                                                          : std::chrono::milliseconds{0};
  // Not while the relay itself waits: for the server to take bytes, or for the client to take
  // them (its read is paused then).
  const bool silent = !client_sent_ && pending(Io::client_read) && !pending(Io::server_write);
  client_sent_ = false;
  if (bound.count() == 0 || !silent) {
    client_silent_ms_ = 0;
    return std::nullopt;
  }
  client_silent_ms_ = add_capped(client_silent_ms_, since_last);
  if (client_silent_ms_ < bound.count()) return std::nullopt;
  if (mid_request) {
    return Stop{Ending::client_violation,
                ClientError{sqlstate::kProtocolViolation,
                            "terminating connection: the client sent part of a request and "
                            "nothing more for " +
                                milliseconds_text(bound),
                            "",
                            "A server connection is held while a request is incomplete; see "
                            "pool.client_request_timeout."},
                std::nullopt};
  }
  if (idle) return Stop{Ending::failure, idle_session_error(), std::nullopt};
  return Stop{Ending::failure,
              ClientError{sqlstate::kIdleInTransactionTimeout,
                          "terminating connection due to idle-in-transaction timeout (" +
                              milliseconds_text(bound) + ")",
                          "",
                          "An open transaction holds a server connection; see "
                          "pool.idle_transaction_timeout."},
              Death{EvictionReason::dirty_return, "client idle in a transaction", Clock::now()}};
}

bool ClientSession::sweep_parked(std::chrono::milliseconds elapsed) {
  if (stop_ || !pending(Io::client_wait)) {
    parked_watched_ = false;
    return false;
  }
  client_silent_ms_ = add_capped(client_silent_ms_, elapsed);
  if (client_silent_ms_ < route_->settings.client_idle_timeout.count()) return true;
  // The wait ends aborted, and its completion tells the client why (on_parked_wake).
  idle_timed_out_ = true;
  parked_watched_ = false;
  stream_.cancel();
  return false;
}

ClientError ClientSession::idle_session_error() const {
  return {sqlstate::kIdleSessionTimeout,
          "terminating connection due to idle-session timeout (" +
              milliseconds_text(route_->settings.client_idle_timeout) + ")",
          "", "See pool.client_idle_timeout."};
}

std::optional<ClientSession::Stop> ClientSession::server_over_its_bound(
    std::chrono::milliseconds since_last) {
  // The pool found the server down while this session held a connection to it.
  if (server_ && server_->condemned()) return server_lost(*server_->condemned());
  // Timed from the sweep after a request went out, and anew after each ReadyForQuery.
  if (!server_ || tracker_.pending_ready() == 0 || server_answered_) {
    server_answered_ = false;
    query_waited_ms_ = 0;
    suspect_after_ms_ = 0;
    query_cancelled_ = false;
    return std::nullopt;
  }
  query_waited_ms_ = add_capped(query_waited_ms_, since_last);
  suspect_a_silent_server();
  const auto limit = route_->settings.query_timeout;
  if (limit.count() == 0 || query_waited_ms_ < limit.count()) return std::nullopt;
  if (!query_cancelled_) {
    // The server answers the cancel with 57014, which the client gets as from a direct server.
    query_cancelled_ = true;
    cancel_running_query();
    return std::nullopt;
  }
  const auto grace = route_->settings.query_cancel_grace;
  if (query_waited_ms_ < limit.count() + grace.count()) return std::nullopt;
  const Death death{EvictionReason::query_timeout,
                    "no answer to the cancel of a query past pool.query_timeout within " +
                        milliseconds_text(grace),
                    server_->last_alive()};
  return Stop{Ending::server_lost,
              ClientError{sqlstate::kConnectionFailure,
                          "terminating connection: the query ran past pool.query_timeout (" +
                              milliseconds_text(limit) +
                              ") and the server did not answer its cancel",
                          death.detail, "The transaction's outcome is unknown; retry it."},
              death};
}

void ClientSession::suspect_a_silent_server() {
  // A request unanswered, and not a byte from the server, for ping.interval: a long query, or a
  // frozen server or path. The pool asks the server on another path, which tells them apart;
  // asked again after each further ping.interval of silence.
  const auto bound = route_->settings.server_silence_suspect;
  if (bound.count() == 0) return;
  const auto due = suspect_after_ms_ != 0 ? suspect_after_ms_ : bound.count();
  if (query_waited_ms_ < due) return;
  const auto silent = Clock::now() - server_->last_alive();
  if (silent < bound) return;  // answers are on their way (a long result)
  suspect_after_ms_ = add_capped(query_waited_ms_, bound);
  route_->pool->suspect_server(server_->id(), silent);
}

}  // namespace pgvigil::proxy
