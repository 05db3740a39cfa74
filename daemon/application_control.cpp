// Application: the admin endpoint's control requests (POST /pause, /resume), which act on every
// shard of one database. Run on worker 0, like everything that reads pools_.
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
  const bool pausing = action == "pause";
  int open = 0;
  int lent = 0;
  for (const auto& shard : pools_[index]) {
    if (pausing) {
      shard->pause();
    } else {
      shard->resume();
    }
    const auto status = shard->status();
    lent += status.checked_out;
    open += status.connecting + status.idle + status.probing + status.checked_out;
  }
  spdlog::info("database {}: {} asked on the admin endpoint", database, action);
  if (!pausing) {
    return {http::status::ok, "database " + std::string(database) + " resumed", open};
  }
  // Idle connections close on the pool's own thread a moment later: a caller that waits for
  // the pause to be complete asks again until no connection is open.
  return {http::status::ok,
          "database " + std::string(database) + " paused; " + std::to_string(open) +
              " server connections still open, " + std::to_string(lent) +
              " of them lent to clients (they close when their transactions end)",
          open};
}

}  // namespace pgvigil::daemon
