// Pool: the shards of one database lending each other room for connections (pool.shards).
// Each shard lives on its own worker and they talk by posts. What moves is a unit of max_size
// (a place for a connection), so the shards' sizes always add up to the database's
// pool.max_size and follow where the clients are.
//
// What a shard lends, when no client of its own waits: room it has not opened, or else the
// place of its idle connection quiet longest, quiet at least kLendAfterIdle (closed, reason
// rebalanced; the borrower opens one). A shard that holds more than its share (its max_size)
// owes one below its share the next place that frees, clients of its own waiting or not:
// shares are what a busy shard can count on, so none starves while another keeps borrowing.
#include <algorithm>
#include <boost/asio/post.hpp>
#include <utility>

#include "pool/pool_internal.hpp"
#include "pool/server_connection.hpp"

namespace pgvigil::pool {
namespace asio = boost::asio;

void Pool::ask_siblings() {
  if (siblings_.empty() || stopping_ || paused_) return;
  // What will serve the waiters anyway: connections on their way, room to open more, and the
  // answers still to come.
  const int coming = count(ConnectionState::connecting) +
                     std::max(0, capacity() - live_connections()) + loans_asked_;
  if (waiting_checkouts() <= coming) return;
  for (std::size_t tried = 0; tried < siblings_.size(); ++tried) {
    auto sibling = siblings_[next_sibling_++ % siblings_.size()].lock();
    if (!sibling || (sibling->lendable() <= 0 && !sibling->owes(*this))) continue;
    ++loans_asked_;
    asio::post(sibling->executor_,
               [sibling, borrower = shared_from_this()] { sibling->lend_to(borrower); });
    return;
  }
}

bool Pool::owes(const Pool& borrower) const {
  return capacity_mirror_.load(std::memory_order_relaxed) >
             share_mirror_.load(std::memory_order_relaxed) &&
         borrower.capacity_mirror_.load(std::memory_order_relaxed) <
             borrower.share_mirror_.load(std::memory_order_relaxed);
}

void Pool::lend_to(std::shared_ptr<Pool> borrower) {
  bool room = false;
  bool too_fresh = false;
  const bool owed = owes(*borrower);
  if (!stopping_ && !paused_ && (owed || waiting_checkouts() == 0)) {
    room = capacity() - live_connections() > 0;
    // No unopened room: the idle connection quiet longest gives up its place.
    if (!room && !idle_.empty()) {
      const auto& oldest = idle_.front();
      if (!owed && Clock::now() - oldest->idle_since() < kLendAfterIdle) {
        too_fresh = true;
      } else {
        give_up_place(oldest);
        room = true;
      }
    }
  }
  if (room) {
    --capacity_delta_;
    publish_capacity();
  } else if (owed && !stopping_ && !paused_ &&
             std::find(debts_.begin(), debts_.end(), borrower) == debts_.end()) {
    // Paid later, unasked, by the next place that frees here (a connection coming back, or
    // one closed). Answered now all the same, so the borrower may ask elsewhere meanwhile.
    debts_.push_back(borrower);
  }
  answer(std::move(borrower), room, too_fresh);
}

void Pool::give_up_place(Lease connection) {
  // Closed rather than moved: its socket is registered with this worker's loop, and the
  // borrower's new connection costs one connect, once, where the clients went.
  evict(connection,
        {EvictionReason::rebalanced,
         "its place went to a shard of the same database with a waiting client", Clock::now()});
}

void Pool::answer(std::shared_ptr<Pool> borrower, bool room, bool ask_again) {
  asio::post(borrower->executor_, [borrower, room, ask_again, epoch = share_epoch_] {
    borrower->take_loan(room, ask_again, true, epoch);
  });
}

void Pool::grant(std::shared_ptr<Pool> borrower) {
  --capacity_delta_;
  publish_capacity();
  asio::post(borrower->executor_,
             [borrower, epoch = share_epoch_] { borrower->take_loan(true, false, false, epoch); });
}

std::shared_ptr<Pool> Pool::next_creditor() {
  while (!debts_.empty()) {
    auto borrower = std::move(debts_.front());
    debts_.pop_front();
    // It may have found room elsewhere meanwhile.
    if (owes(*borrower)) return borrower;
  }
  return nullptr;
}

bool Pool::pay_debt(const Lease& connection) {
  auto borrower = next_creditor();
  if (!borrower) return false;
  give_up_place(connection);
  grant(std::move(borrower));
  return true;
}

void Pool::pay_debts_with_room() {
  while (!debts_.empty() && capacity() - live_connections() > 0) {
    auto borrower = next_creditor();
    if (!borrower) return;
    grant(std::move(borrower));
  }
}

void Pool::take_loan(bool room, bool ask_again, bool reply, std::uint64_t epoch) {
  if (reply) --loans_asked_;
  // Granted before a reload re-split max_size: the shares start again from the new split.
  if (epoch != share_epoch_) room = false;
  if (room) {
    ++capacity_delta_;
    publish_capacity();
    wake_maintenance();  // opens a connection for the waiters
    ask_siblings();      // still more waiters than what comes: the next sibling
  } else if (ask_again) {
    // Its idle connection was too fresh to tell: asked again once it is not. A plain refusal
    // is not asked again at once, which would only go round in circles; the next waiter asks.
    run_once_after(loan_retry_, kLendAfterIdle, &Pool::ask_siblings);
  }
}

}  // namespace pgvigil::pool
