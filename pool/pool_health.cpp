// Pool: its part in the server's health (server_health.hpp). It tells the health what its
// connections show (a death of the path, a request unanswered, an answer), asks the server on
// every path it has when the health asks, and lets every connection go when the server is down.
#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>

#include "pool/pool_internal.hpp"
#include "pool/server_connection.hpp"

namespace pgvigil::pool {
namespace asio = boost::asio;
using asio::awaitable;
using Seconds = std::chrono::duration<double>;

// One health round's probes in this pool: each idle connection's ping, or a fresh connection.
struct Pool::ProbeRound {
  std::uint64_t round = 0;
  int pending = 0;
  bool answered = false;
};

namespace {

// Deaths that say the path or the server stopped answering, not only that one backend went
// (a terminated backend, a FATAL, a closed socket say nothing about the others).
bool silence_of_the_server(EvictionReason reason) {
  return reason == EvictionReason::ping_timeout || reason == EvictionReason::keepalive_timeout ||
         reason == EvictionReason::user_timeout;
}

}  // namespace

void Pool::tell_health(const Death& death, std::uint64_t connection_id) {
  if (!silence_of_the_server(death.reason)) return;
  health_->sign_of_trouble(
      std::string(to_string(death.reason)) + " on connection " + std::to_string(connection_id),
      death.last_sign_of_life);
}

void Pool::suspect_server(std::uint64_t connection_id, Clock::duration silent) {
  health_->sign_of_trouble(fmt::format("a request on connection {} unanswered for {:.1f} s",
                                       connection_id, Seconds(silent).count()),
                           Clock::now() - silent);
}

bool Pool::failing_fast() const {
  return config_->pool.fail_fast && health_->state() == HealthState::down;
}

CheckoutError Pool::server_down_error() const {
  return CheckoutError{CheckoutError::Kind::server_down, health_->verdict()};
}

// --- asking the server ------------------------------------------------------------------------

void Pool::probe_server(std::uint64_t round) {
  asio::post(executor_, [self = shared_from_this(), round] { self->probe_here(round); });
}

void Pool::probe_here(std::uint64_t round) {
  auto probes = std::make_shared<ProbeRound>();
  probes->round = round;
  if (stopping_) {
    health_->probe_unanswered(round);
    return;
  }
  // Paused: no connection is opened, and no answer is owed either (saying "unanswered" would
  // make the server look down). A lent connection's own answer, or the resume, settles it.
  if (paused_) return;
  // Every idle connection at once (not at its next ping); a probing one answers its own ping.
  const std::vector<Lease> idle(idle_.begin(), idle_.end());
  probes->pending = idle.empty() ? 1 : static_cast<int>(idle.size());
  if (idle.empty()) {
    // Nothing to ping: a fresh connection asks instead.
    asio::co_spawn(
        executor_, [self = shared_from_this(), probes] { return self->open_connection(probes); },
        asio::detached);
    return;
  }
  for (const auto& connection : idle) {
    // Probing before the watcher wakes: it sees the connection is no longer idle and ends, so
    // the ping alone waits on the socket.
    connection->detach();
    transition(*connection, ConnectionState::probing);
    asio::co_spawn(
        executor_,
        [self = shared_from_this(), connection, probes] {
          return self->probe_idle(connection, probes);
        },
        asio::detached);
  }
}

awaitable<void> Pool::probe_idle(Lease connection, std::shared_ptr<ProbeRound> round) {
  // Evicted between the round's start and this coroutine's (the server found down, a
  // shutdown): it proves nothing.
  const bool answered =
      connection->state() == ConnectionState::probing && co_await ping_idle(connection);
  if (answered) make_available(connection);
  probe_done(*round, answered);
}

void Pool::probe_done(ProbeRound& round, bool answered) {
  if (answered && !round.answered) {
    round.answered = true;
    health_->answered();
  }
  if (--round.pending == 0 && !round.answered) health_->probe_unanswered(round.round);
}

// --- the verdict ------------------------------------------------------------------------------

void Pool::server_down(const Death& death) {
  asio::post(executor_, [self = shared_from_this(), death] { self->server_down_here(death); });
}

void Pool::server_down_here(const Death& death) {
  std::vector<Lease> idle;
  for (const auto& [id, connection] : connections_) {
    if (connection->state() == ConnectionState::idle) {
      idle.push_back(connection);
    } else if (connection->state() == ConnectionState::checked_out) {
      // Its lease holder ends the client's wait with 08006 and gives it back with this death.
      connection->condemn(death);
    }
  }
  for (const auto& connection : idle) evict(connection, death);
  // Clients waiting for a connection learn it now, if they are not to wait for one.
  if (config_->pool.fail_fast) {
    for (const auto& waiter : std::exchange(waiters_, {})) {
      if (!waiter->done) wake(waiter);
    }
  }
  wake_maintenance();
}

}  // namespace pgvigil::pool
