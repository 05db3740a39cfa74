// Application: the admin endpoint's control requests (POST /pause, /resume, and GET for the
// state), which act on every shard of one database. Run on worker 0, like everything that reads
// pools_.
#include <spdlog/spdlog.h>

#include "daemon/application.hpp"

namespace pgvigil::daemon {
namespace http = boost::beast::http;

metrics::ControlAnswer Application::control(std::string_view action, std::string_view database) {
  std::size_t index = 0;
  while (index < config_.databases.size() && config_.databases[index].name != database) ++index;
  if (index == config_.databases.size()) {
    return {http::status::not_found,
            "no database \"" + std::string(database) + "\" in the configuration"};
  }
  const std::string name(database);
  // The database's shards, or its per-user pools.
  auto shards = pools_[index];
  for (const auto& pool : user_pools_of(name)) shards.push_back(pool);
  if (action == "pause") {
    paused_databases_.insert(name);
    for (const auto& shard : shards) shard->pause();
    spdlog::info("database {}: paused on the admin endpoint", name);
  } else if (action == "resume") {
    paused_databases_.erase(name);
    for (const auto& shard : shards) shard->resume();
    spdlog::info("database {}: resumed on the admin endpoint", name);
  }
  int open = 0;
  int lent = 0;
  // Shards a reload replaced still hold their connections until they have drained.
  for (const auto& pool : retiring_) {
    if (pool->name() == name) shards.push_back(pool);
  }
  for (const auto& shard : shards) {
    const auto status = shard->status();
    lent += status.checked_out;
    open += status.connecting + status.idle + status.probing + status.checked_out;
  }
  const bool paused = paused_databases_.contains(name);
  if (!paused) {
    return {http::status::ok,
            "database " + name + " is not paused; " + std::to_string(open) +
                " server connections open",
            open, false};
  }
  // Idle connections close on the pools' own threads a moment later: a caller that waits for
  // the pause to be complete reads the state (GET) until no connection is open.
  return {http::status::ok,
          "database " + name + " paused; " + std::to_string(open) +
              " server connections still open, " + std::to_string(lent) +
              " of them lent to clients (they close when their transactions end)",
          open, true};
}

}  // namespace pgvigil::daemon
