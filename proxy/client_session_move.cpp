// A session moving to another worker (listen.pack_until_busy, worker_placement.hpp).
//
// Clients are placed on as few workers as their load needs; clients that connected while all
// was quiet and got busy later would otherwise stay on the first worker for good. When a
// worker's sweep finds an active session between two transactions and the placement says this
// worker is over the mark with another well below it, the session moves:
//   1. request_move: the pending client read is cancelled (as the sweep does to park);
//   2. move_to_worker, when the read lets go: the buffer goes back to this worker's pool, the
//      socket is handed off, and the arrival is posted to the other worker;
//   3. arrive, there: the socket is adopted by that worker's loop, the session takes its route
//      to the database's shard on that worker, and waits for its client (parked), whose next
//      request is read and relayed there.
// Only a session that holds nothing of this worker's moves: transaction pooling, no server
// connection, no request half in, nothing owed either way, no cancel on its way, not pinned.
// Its named statements go with it (their texts are immutable and shared), and are prepared on
// the new shard's connections as on any other connection. Calls from other threads (cancels,
// the drain) find the session through home_ (at_home).

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <cassert>

#include "proxy/client_session.hpp"

namespace pgvigil::proxy {
namespace asio = boost::asio;

bool ClientSession::movable() const {
  return transaction_pooling() && phase_ == Phase::idle && !server_ && !pin_ && !stop_ &&
         drain_ == Drain::none && pending_ == Io::client_read && !request_half_in() &&
         held_client_bytes_ == 0 && cancels_in_flight_ == 0 && !settings_changed_ &&
         !parked_watched_ && has_cancel_key_ && between_requests() &&
         (!occasional_ || (!occasional_->pending_input && !occasional_->unsent &&
                           !occasional_->unsent_to_client && !occasional_->stop_after_forward &&
                           !occasional_->pending_set && !occasional_->moving_to));
}

bool ClientSession::request_move() {
  auto* placement = service_.placement();
  if (!placement || !route_) return false;
  // On the session's worker, home_ is this worker: only this thread changes it from here.
  const auto here = home_.load(std::memory_order_relaxed);
  // The cheap tests first: most sweeps of a worker under the mark end here, and a route with no
  // sibling shard (a per-user route, pool.shards 1: learnt is shared by the shards' routes) has
  // nowhere to go, without taking the routes' lock to find that out every sweep.
  if (!placement->may_move_from(here) || !route_->learnt || route_->learnt.use_count() < 2 ||
      !movable()) {
    return false;
  }
  // Only to a worker where the database has a shard (and while the route is current).
  // The last worker `can_take` accepts is the one chosen (it is only asked about a better one).
  Route* next = nullptr;
  const auto target = placement->move_target(here, [&](std::size_t worker) {
    Route* there = service_.shard_route_on(*route_, worker);
    if (there) next = there;
    return there != nullptr;
  });
  if (!target) return false;
  occasional().moving_to = next;
  move_requested_ = true;
  stream_.cancel();
  return true;
}

void ClientSession::move_to_worker() {
  Route* next = std::exchange(occasional_->moving_to, nullptr);
  std::size_t worker = 0;
  const auto& workers = service_.workers();
  while (worker < workers.size() && !(workers[worker] == next->pool->executor())) ++worker;
  assert(worker < workers.size());  // shard_route_on returns routes of the workers' pools only
  client_buffer_.give_back();       // to this worker's free list
  // A timer made on this worker's loop (for cancels, none in flight) is not taken along.
  if (occasional_) occasional_->cancel_timer.reset();
  if (occasional_ && occasional_->empty()) occasional_.reset();
  const auto handed = stream_.hand_off();
  // On its way until the arrival runs: work at_home posts meanwhile goes to the new worker and
  // waits there for the arrival. Only the arrival publishes the new home, and this store comes
  // before the arrival is posted, so no thread can put back a home the session has left (this
  // one could be descheduled between the post and a store after it for as long as the session
  // took to move on).
  home_.store(static_cast<std::uint8_t>(kInTransit | worker), std::memory_order_release);
  asio::post(workers[worker], [self = shared_from_this(), next, handed, worker] {
    self->arrive(next, handed, worker);
  });
}

void ClientSession::arrive(Route* next, stream::HandedOff handed, std::size_t worker) {
  // Published here only, on the new worker: from now on at_home's work runs here.
  home_.store(static_cast<std::uint8_t>(worker), std::memory_order_release);
  // Everything route-bound is this worker's shard's from now on, even if the session ends here.
  route_ = next;
  recently_active_ = false;  // no transaction here yet
  if (statements_) statements_->rebind(next->statement_texts);
  // Interned in this route, so its connections recognise the settings by their pointer.
  settings_ = intern_settings(*route_, *settings_);
  if (occasional_ && occasional_->startup_settings) {
    occasional_->startup_settings = intern_settings(*route_, *occasional_->startup_settings);
  }
  const auto executor = service_.workers()[worker];
  if (!stream_.adopt(executor, handed)) {
    // The new event loop refused the socket (out of memory): nothing can reach the client.
    auto task = [self = shared_from_this()] { return self->end_session(); };
    return asio::co_spawn(executor, std::move(task), asio::detached);
  }
  service_.placement()->count_moved_in(worker);
  // Bytes the client sent meanwhile are in the socket: the wait reports them at once.
  park();
}

}  // namespace pgvigil::proxy
