// Application: what the daemon says about itself. /readyz (per pool and shard), and to systemd:
// READY=1 once every database has a healthy connection, a STATUS line per database, the
// watchdog pings from every worker.
#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <map>

#include "daemon/application.hpp"

namespace pgvigil::daemon {
namespace asio = boost::asio;

metrics::ReadyState Application::readiness() const {
  if (proxy_ && proxy_->draining()) return {false, "draining: pgvigil is shutting down\n"};
  metrics::ReadyState state{true, {}};
  // Per database: a shard may hold no connection (its share of min_idle is 0) and borrow one.
  std::vector<bool> database_ready(pools_.size(), false);
  for (const auto& [name, pool, gates_readiness, database] : named_pools()) {
    const auto status = pool->status();
    const bool healthy = status.healthy() > 0;
    // A paused pool has closed its connections on purpose: clients wait for the resume.
    if (gates_readiness && (healthy || status.paused)) database_ready[database] = true;
    state.detail += "pool " + name + ": " + (status.paused ? "paused, " : "") +
                    std::to_string(status.healthy()) + " healthy (" + std::to_string(status.idle) +
                    " idle, " + std::to_string(status.checked_out) + " in use, " +
                    std::to_string(status.connecting) + " connecting)";
    if (!status.servers.empty()) state.detail += " on " + status.servers;
    if (!healthy && !status.last_connect_failure.empty()) {
      state.detail += ", last connect failure: " + status.last_connect_failure;
    }
    state.detail += "\n";
  }
  for (std::size_t database = 0; database < pools_.size(); ++database) {
    // A per-user database has no pool of its own to wait for.
    if (!pools_[database].empty() && !database_ready[database]) state.ready = false;
  }
  return state;
}


// --- systemd --------------------------------------------------------------------------------

bool Application::pools_healthy() const {
  // Every database has a healthy connection, in one of its shards at least.
  return std::all_of(pools_.begin(), pools_.end(), [](const Shards& shards) {
    return shards.empty() || std::any_of(shards.begin(), shards.end(), [](const auto& pool) {
             return pool->status().healthy() > 0;
           });
  });
}

std::string Application::status_line() const {
  std::vector<std::string> parts;
  // One part per database: its shards added up (/readyz lists them one by one).
  std::vector<std::pair<std::string, pool::PoolStatus>> totals;
  std::map<std::size_t, std::size_t> part_of_database;
  for (const auto& [name, pool, gates_readiness, database] : named_pools()) {
    const auto status = pool->status();
    if (!gates_readiness || pools_[database].size() < 2) {
      totals.emplace_back(name, status);
      continue;
    }
    const auto [found, added] = part_of_database.try_emplace(database, totals.size());
    if (added) {
      totals.emplace_back(pool->name(), status);
      continue;
    }
    auto& total = totals[found->second].second;
    total.idle += status.idle;
    total.probing += status.probing;
    total.checked_out += status.checked_out;
    total.connecting += status.connecting;
    if (total.last_connect_failure.empty()) total.last_connect_failure = status.last_connect_failure;
  }
  for (const auto& [name, status] : totals) {
    std::string part = fmt::format("{}: {} idle {} busy", name, status.idle + status.probing,
                                   status.checked_out);
    if (status.healthy() == 0) {
      if (!status.last_connect_failure.empty()) {
        part += " (connect failures)";
      } else if (status.connecting > 0) {
        part += " (connecting)";
      }
    }
    parts.push_back(std::move(part));
  }
  for (const auto& pool : retiring_) parts.push_back(pool->name() + ": draining");
  return fmt::format("{}", fmt::join(parts, "; "));
}

asio::awaitable<void> Application::report_status() {
  asio::steady_timer timer(workers_.context(0));
  std::string sent;
  auto last_sent = std::chrono::steady_clock::now();
  while (!shutting_down_) {
    if (!ready_sent_ && pools_healthy()) {
      ready_sent_ = true;
      spdlog::info("every pool has a healthy server connection; READY=1");
      notifier_.ready();
    }
    // A changed line goes out within a quarter second; an unchanged one is repeated each
    // minute, so a status lost by systemd does not stay wrong.
    const auto line = status_line();
    const auto now = std::chrono::steady_clock::now();
    if (line != sent || now - last_sent >= std::chrono::minutes(1)) {
      notifier_.status(line);
      sent = line;
      last_sent = now;
    }
    timer.expires_after(std::chrono::milliseconds(250));
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
  }
}

asio::awaitable<void> Application::feed_watchdog() {
  // Each round posts a tick through every worker's loop and back to worker 0; WATCHDOG=1 goes
  // out only once all of them answered, and no new round starts before that. A stuck loop so
  // stops the pings and systemd restarts the service.
  const auto interval = *notifier_.watchdog_interval() / 2;
  auto pending = std::make_shared<int>(0);
  asio::steady_timer timer(workers_.context(0));
  while (true) {
    if (*pending == 0) {
      *pending = workers_.size();
      for (int i = 0; i < workers_.size(); ++i) {
        asio::post(workers_.context(i), [this, pending] {
          asio::post(workers_.context(0), [this, pending] {
            if (--*pending == 0) notifier_.watchdog();
          });
        });
      }
    }
    timer.expires_after(interval);
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
  }
}


}  // namespace pgvigil::daemon
