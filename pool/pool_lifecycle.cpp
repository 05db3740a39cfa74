// Pool: shutdown, reload and retirement, each entered on the pool's executor.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "pool/pool_internal.hpp"
#include "pool/server_connection.hpp"

namespace pgvigil::pool {
namespace asio = boost::asio;
using asio::awaitable;
using Seconds = std::chrono::duration<double>;

// --- shutdown -------------------------------------------------------------------------------

awaitable<void> Pool::shutdown_here() {
  stopping_ = true;
  cancel_debts();
  maintenance_timer_.cancel();
  waiter_deadline_timer_.cancel();
  waiter_deadline_at_ = Clock::time_point::max();
  for (const auto& waiter : std::exchange(waiters_, {})) {
    if (!waiter->done) wake(waiter);
  }
  std::vector<Lease> pooled;
  for (const auto& [id, connection] : connections_) {
    const auto state = connection->state();
    if (state == ConnectionState::idle || state == ConnectionState::probing) {
      pooled.push_back(connection);
    } else if (state == ConnectionState::connecting) {
      connection->detach();  // ends the connect wait; open_connection closes it
    }
  }
  for (const auto& connection : pooled) {
    evict(connection, {stop_reason_, stop_detail(stop_reason_), Clock::now()});
  }
  co_return;
}

// --- reload ---------------------------------------------------------------------------------

awaitable<void> Pool::update_config_here(PoolConfig config) {
  const auto old = config_;
  config_ = std::make_shared<const PoolConfig>(std::move(config));
  if (old->pool.max_size != config_->pool.max_size) {
    // max_size split anew: every shard starts again from its share (places lent or borrowed
    // under the old split would no longer add up to the new total).
    capacity_delta_ = 0;
    ++share_epoch_;
    debts_.clear();
  }
  publish_capacity();
  backoff_.update(config_->pool.reconnect);
  const auto now = Clock::now();
  if (old->server != config_->server) {
    health_->rename(config_->server.describe());
    // Drain: nothing of the old server is lent again. Leased and connecting ones are evicted
    // by make_available when they would become idle.
    ++endpoint_generation_;
    backoff_.reset();
    next_connect_at_ = {};
    {
      std::lock_guard lock(failure_mutex_);
      last_connect_failure_.clear();
    }
    const std::vector<Lease> idle(idle_.begin(), idle_.end());
    for (const auto& connection : idle) {
      evict(connection, {EvictionReason::reload, "server settings changed by a reload", now});
    }
    // A probing connection's ping ends in make_available, which evicts it then.
  } else {
    const bool keepalive_changed = old->keepalive != config_->keepalive;
    const bool lifetime_changed = old->pool.max_lifetime != config_->pool.max_lifetime ||
                                  old->pool.lifetime_jitter != config_->pool.lifetime_jitter;
    for (const auto& [id, connection] : connections_) {
      const auto state = connection->state();
      // A connecting one is checked against the new options once connected (open_connection).
      if (state == ConnectionState::connecting || state == ConnectionState::closing) continue;
      if (keepalive_changed) {
        apply_keepalive_to(*connection);
      } else {
        connection->set_config(config_);
      }
      if (lifetime_changed) {
        const auto& settings = config_->pool;
        if (settings.max_lifetime.count() == 0) {
          connection->set_expires_at(Clock::time_point::max());
        } else {
          std::uniform_real_distribution<double> cut(0.0, settings.lifetime_jitter);
          connection->set_expires_at(connection->created_at() +
                                     std::chrono::duration_cast<Clock::duration>(
                                         settings.max_lifetime * (1.0 - cut(random_))));
        }
      }
    }
  }
  close_surplus_idle();
  wake_maintenance();
  co_return;
}

void Pool::close_surplus_idle() {
  int live = live_connections();
  // The least recently used first; leased ones are over the limit until they come back, and
  // the maintenance task opens none while live >= max_size.
  while (live > capacity() && !idle_.empty()) {
    const auto connection = idle_.front();
    evict(connection, {EvictionReason::reload, "pool.max_size reduced by a reload", Clock::now()});
    --live;
  }
}

awaitable<void> Pool::retire_here() {
  stop_reason_ = EvictionReason::reload;
  co_await shutdown_here();
  // Leased connections are evicted as they come back (on_return), connecting ones as their
  // attempt ends; the pool is gone once nothing is left.
  asio::steady_timer poll(executor_);
  while (!connections_.empty()) {
    poll.expires_after(std::chrono::milliseconds(100));
    co_await poll.async_wait(asio::as_tuple(asio::use_awaitable));
  }
}

// GCC 12 destroys a temporary with a destructor twice when it stands inside a co_await
// expression; the lambdas that hop onto the pool's executor are therefore named locals.

awaitable<void> Pool::shutdown() {
  auto task = [self = shared_from_this()] {
    self->stop_reason_ = EvictionReason::shutdown;
    return self->shutdown_here();
  };
  co_await asio::co_spawn(executor_, std::move(task), asio::use_awaitable);
}

awaitable<void> Pool::update_config(PoolConfig config) {
  auto task = [self = shared_from_this(), config = std::move(config)]() mutable {
    return self->update_config_here(std::move(config));
  };
  co_await asio::co_spawn(executor_, std::move(task), asio::use_awaitable);
}

awaitable<void> Pool::retire() {
  auto task = [self = shared_from_this()] { return self->retire_here(); };
  co_await asio::co_spawn(executor_, std::move(task), asio::use_awaitable);
}

}  // namespace pgvigil::pool
