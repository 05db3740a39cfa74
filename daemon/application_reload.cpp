// Application: reload (SIGHUP, the config file's watch), and the retirement of a pool whose
// database left the configuration. The rest of the daemon's life is in application.cpp.
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "daemon/application.hpp"
#include "daemon/config_diff.hpp"
#include "daemon/config_loader.hpp"
#include "pool/shard_config.hpp"

namespace pgvigil::daemon {
namespace asio = boost::asio;

// --- reload ---------------------------------------------------------------------------------

asio::awaitable<void> Application::reload(const char* trigger) {
  // One at a time: a trigger arriving during a reload runs one more afterwards.
  if (reload_running_) {
    reload_again_ = true;
    co_return;
  }
  reload_running_ = true;
  do {
    reload_again_ = false;
    co_await reload_once(trigger);
  } while (reload_again_ && !shutting_down_);
  reload_running_ = false;
}

asio::awaitable<void> Application::reload_once(const char* trigger) {
  notifier_.reloading();
  config_stamp_ = config_stamp();  // before reading, so a write during the read triggers again
  Config next;
  try {
    next = load_config(config_.source_path);
    if (auto refused = restart_only_change(config_, next)) throw *refused;
  } catch (const ConfigError& error) {
    spdlog::error("reload ({}) rejected, still running the previous configuration: {}", trigger,
                  error.what());
    registry_.record_config_reload(false);
    notifier_.ready();
    co_return;
  }

  std::vector<std::string> summary;
  std::vector<Shards> next_pools;
  const auto retire = [this](const Shards& shards) {
    for (const auto& pool : shards) {
      retiring_.push_back(pool);
      asio::co_spawn(workers_.context(0), retire_pool(pool), asio::detached);
    }
  };
  for (std::size_t i = 0; i < next.databases.size(); ++i) {
    const auto& database = next.databases[i];
    const auto found = std::find_if(config_.databases.begin(), config_.databases.end(),
                                    [&](const auto& old) { return old.name == database.name; });
    if (found == config_.databases.end()) {
      next_pools.push_back(make_pools(database));
      for (const auto& pool : next_pools.back()) pool->start();
      summary.push_back("database " + database.name + " added (server " +
                        database.server.describe() + ")");
      continue;
    }
    const auto index = static_cast<std::size_t>(found - config_.databases.begin());
    if (found->pool.shards != database.pool.shards || found->user_pools != database.user_pools) {
      // Other shard counts are other pools: the old ones drain, new ones start empty.
      retire(pools_[index]);
      next_pools.push_back(make_pools(database));
      for (const auto& pool : next_pools.back()) pool->start();
      summary.push_back("database " + database.name + ": pool.shards " +
                        std::to_string(found->pool.shards) + " -> " +
                        std::to_string(database.pool.shards) +
                        " (the old pools drain; new ones open)");
      continue;
    }
    auto shards = pools_[index];
    const auto changes = database_changes(*found, config_.routes[index], database, next.routes[i]);
    if (!changes.empty()) {
      for (std::size_t shard = 0; shard < shards.size(); ++shard) {
        auto update = shards[shard]->update_config(
            pool::shard_config(database, static_cast<int>(shard)));
        co_await std::move(update);
      }
      std::string line = "database " + database.name + ": " + fmt::format("{}", fmt::join(changes, ", ")) + " changed";
      if (std::find(changes.begin(), changes.end(), "keepalive") != changes.end()) {
        const auto& k = database.keepalive;
        line += fmt::format(" (keepalive idle={}s interval={}s count={} user_timeout={}ms set on "
                            "every live server socket)",
                            k.idle.count(), k.interval.count(), k.count, k.user_timeout.count());
      }
      if (std::find(changes.begin(), changes.end(), "server") != changes.end()) {
        line += " (draining connections to the old server; new ones go to " +
                database.server.describe() + ")";
      }
      summary.push_back(std::move(line));
    }
    next_pools.push_back(std::move(shards));
  }
  for (std::size_t i = 0; i < config_.databases.size(); ++i) {
    const auto& name = config_.databases[i].name;
    const bool kept = std::any_of(next.databases.begin(), next.databases.end(),
                                  [&](const auto& database) { return database.name == name; });
    if (kept) continue;
    retire(pools_[i]);
    summary.push_back("database " + name + " removed (draining)");
  }

  if (next.log.level != config_.log.level) {
    spdlog::set_level(spdlog::level::from_str(next.log.level));
    summary.push_back("log.level " + config_.log.level + " -> " + next.log.level);
  }
  if (next.reload.watch_file != config_.reload.watch_file) {
    summary.push_back(std::string("reload.watch_file ") + (next.reload.watch_file ? "on" : "off"));
  }
  if (next.proxy.tls.context || config_.proxy.tls.context) {
    // Made again from the files at every reload: a renewed certificate needs no other change.
    summary.push_back(next.proxy.tls.context
                          ? "client TLS certificate loaded from " + next.proxy.tls.files.cert_file
                          : std::string("client TLS no longer offered"));
  }
  co_await reload_user_pools(next);
  proxy_->replace_tls_context(next.proxy.tls.context);
  if (next.admin.tls) {
    admin_->replace_tls(next.admin.tls);
    summary.push_back("admin TLS certificate loaded from " + next.admin.tls_cert_file);
  }
  config_ = std::move(next);
  pools_ = std::move(next_pools);
  // A pause outlives the reload: new shards of a paused database start paused (a pause asked
  // while the reload ran reached only the old ones), and a database gone is no longer paused.
  std::erase_if(paused_databases_, [this](const std::string& name) {
    return std::none_of(config_.databases.begin(), config_.databases.end(),
                        [&name](const auto& database) { return database.name == name; });
  });
  for (std::size_t i = 0; i < config_.databases.size(); ++i) {
    if (!paused_databases_.contains(config_.databases[i].name)) continue;
    for (const auto& pool : pools_[i]) pool->pause();
  }
  proxy_->replace_routes(make_routes());
  registry_.record_config_reload(true);
  spdlog::info("config reloaded ({}) from {}: {}", trigger, config_.source_path,
               summary.empty() ? "nothing changed" : fmt::format("{}", fmt::join(summary, "; ")));
  notifier_.ready();
}

asio::awaitable<void> Application::retire_pool(std::shared_ptr<pool::Pool> pool) {
  auto retiring = pool->retire();
  co_await std::move(retiring);
  if (shutting_down_) co_return;
  std::erase(retiring_, pool);
  // The same name may have come back meanwhile (its series are then the new pool's), or a
  // sibling shard may still be draining.
  const auto others = every_pool();
  const bool reused = std::any_of(others.begin(), others.end(), [&](const auto& other) {
    return other->name() == pool->name();
  });
  if (!reused) registry_.remove_pool(pool->name());
  spdlog::info("pool {}: removed, every server connection closed", pool->name());
}

std::optional<Application::FileStamp> Application::config_stamp() const {
  struct stat info {};
  if (::stat(config_.source_path.c_str(), &info) != 0) return std::nullopt;
  return FileStamp{static_cast<long long>(info.st_mtim.tv_sec) * 1000000000LL + info.st_mtim.tv_nsec,
                   static_cast<unsigned long long>(info.st_ino),
                   static_cast<long long>(info.st_size)};
}

asio::awaitable<void> Application::watch_config_file() {
  // Polling once a second: simple, survives editors that replace the file by rename, and a
  // reload is never urgent.
  asio::steady_timer timer(workers_.context(0));
  while (!shutting_down_) {
    timer.expires_after(std::chrono::seconds(1));
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    if (!config_.reload.watch_file || shutting_down_) continue;
    const auto stamp = config_stamp();
    if (stamp && stamp != config_stamp_) co_await reload("file change");
  }
}

}  // namespace pgvigil::daemon
