// How a ClientSession ends: the relay stops its pending I/O (end_after_io), and once nothing is
// pending one ending coroutine gives the server connection back (reset or evicted, as its state
// says) and tells the client why, if there is anything to tell.

#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>

#include "proxy/client_session.hpp"
#include "proxy/relay/server_side.hpp"

namespace pgvigil::proxy {
namespace asio = boost::asio;
using asio::awaitable;
using pool::Clock;
using pool::Death;
using pool::EvictionReason;

namespace {

ClientError shutdown_error() {
  return {sqlstate::kAdminShutdown, "terminating connection: pgvigil is shutting down", "",
          "Reconnect: another pgvigil instance or the restarted one will serve you."};
}

}  // namespace

ClientError ClientSession::shutdown_failure() { return shutdown_error(); }

ClientError ClientSession::internal_failure(std::exception_ptr error) {
  std::string what = "unknown error";
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
  }
  return {sqlstate::kInternalError, "pgvigil failed relaying this session: " + what, "", ""};
}

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
  enter(Phase::ending, "the relay stops");
  flush_relay_metrics();
  // Each pending operation completes (aborted) and comes back through continue_ending().
  if (pending(Io::client_read) || pending(Io::client_wait)) stream_.cancel();
  if (pending(Io::server_read) && server_) server_->detach();
  continue_ending();
}

void ClientSession::continue_ending() {
  if (pending_ != 0 || ending_started_) return;
  ending_started_ = true;
  client_buffer_.give_back();
  server_buffer_.give_back();
  if (server_input_lost_ && server_) {
    return_server(Death{EvictionReason::dirty_return,
                        "the server sent data after the client's session ended", Clock::now()});
  }
  switch (stop_->ending) {
    case Ending::quit:
      // A client that says goodbye between transactions holds no server connection: nothing
      // to give back or wait for, so no coroutine (end_session would only close).
      if (!server_) return close();
      return spawn(&ClientSession::end_session);
    case Ending::shutdown:
      return spawn(&ClientSession::finish_for_shutdown);
    case Ending::client_violation:
    case Ending::server_lost:
    case Ending::failure:
      return spawn(&ClientSession::end_with_error);
  }
}

void ClientSession::return_server(std::optional<Death> death) {
  if (!server_) return;
  route_->pool->give_back(std::move(server_), std::move(death));
  server_.reset();
}

awaitable<void> ClientSession::give_back_at_end() {
  if (server_) co_await wait_for_cancels();
  if (!server_) co_return;
  const bool clean = between_requests();
  if (!clean) {
    co_return return_server(
        drain_ == Drain::now
            ? Death{EvictionReason::shutdown, "pgvigil stopped mid-transaction", Clock::now()}
            : Death{EvictionReason::dirty_return,
                    tracker_.status() != 'I' ? "client left inside a transaction"
                                             : "client left with a request unanswered",
                    Clock::now()});
  }
  // Settings the client changed in SQL were not read back: the next lease starts from RESET ALL.
  if (settings_changed_) relay::server_side(*server_).settings_unknown = true;
  // Transaction pooling leaves nothing behind a client that was never pinned.
  if (transaction_pooling() && !pin_) co_return return_server(std::nullopt);
  if (route_->settings.reset_query.empty()) {
    // Session pooling without a reset is the operator's choice; a pinned client's state must
    // not reach the next client of transaction pooling.
    co_return return_server(pin_ ? std::optional<Death>(Death{EvictionReason::dirty_return,
                                                              "the client left session state "
                                                              "and reset_query is empty",
                                                              Clock::now()})
                                 : std::nullopt);
  }
  auto failure = co_await server_->execute(route_->settings.reset_query,
                                           Clock::now() + route_->checkout_timeout);
  if (failure) {
    co_return return_server(failure->death
                                ? failure->death
                                : Death{EvictionReason::dirty_return,
                                        "reset query failed: " + failure->message, Clock::now()});
  }
  // The reset returns every setting to its default (DISCARD ALL, RESET ALL).
  relay::server_side(*server_).applied_settings = nullptr;
  relay::server_side(*server_).settings_unknown = false;
  relay::server_side(*server_).statements.clear();
  return_server(std::nullopt);
}

awaitable<void> ClientSession::end_session() {
  co_await give_back_at_end();
  close();
}

awaitable<void> ClientSession::finish_for_shutdown() {
  co_await give_back_at_end();
  fail(shutdown_error());
}

awaitable<void> ClientSession::end_with_error() {
  if (server_) {
    co_await wait_for_cancels();
    if (stop_->ending == Ending::client_violation) {
      return_server(Death{EvictionReason::dirty_return, "client broke the protocol mid-request",
                          Clock::now()});
    } else if (stop_->death) {
      return_server(stop_->death);
    }
  }
  fail(std::move(*stop_->error));
}

void ClientSession::fail(ClientError error) {
  if (!error.sqlstate.empty()) {
    if (route_ == nullptr) {
      service_.count_startup_error(error.sqlstate);
    } else if (route_->metrics) {
      route_->metrics->client_error(error.sqlstate);
    }
    spdlog::info("client session{}: {} {}{}", route_ ? " for " + route_->settings.database : "",
                 error.sqlstate, error.message, error.detail.empty() ? "" : ": " + error.detail);
  }
  enter(Phase::ending, error.sqlstate.empty() ? "the client is gone" : "telling the client why");
  // The error travels in stop_, which the ending reads; a relay stop already has one.
  if (!stop_) {
    stop_ = std::make_unique<Stop>(Stop{Ending::failure, std::move(error), std::nullopt});
  } else {
    stop_->error = std::move(error);
  }
  ending_started_ = true;
  spawn(&ClientSession::send_failure);
}

awaitable<void> ClientSession::send_failure() {
  const auto& error = *stop_->error;
  if (!error.sqlstate.empty() && stream_.is_open()) {
    // After a login the client hears AuthenticationOk first, as PostgreSQL orders its own later
    // refusals: libpq takes an error before it as a failed login and tries again (without TLS
    // under sslmode=prefer, or at the next host).
    std::string bytes;
    if (auto* greeting = occasional(&Occasional::greeting)) bytes = std::move(*greeting);
    bytes += fatal_error_bytes(error);
    boost::system::error_code ec;
    co_await stream_.write_all(bytes, ec);
  }
  if (server_) {
    co_await wait_for_cancels();
    return_server(Death{EvictionReason::dirty_return, "session failed", Clock::now()});
  }
  close();
}

void ClientSession::close() {
  if (auto* timer = occasional(&Occasional::cancel_timer)) timer->cancel();
  stream_.close();
}
}  // namespace pgvigil::proxy
