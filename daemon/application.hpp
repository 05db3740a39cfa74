#pragma once
// Wiring: builds the worker loops, the metrics registry, one pool per configured database, the
// admin endpoint and the signal handling, runs them until a signal, then shuts down in order.

#include <boost/asio/signal_set.hpp>
#include <memory>
#include <optional>
#include <vector>

#include "daemon/config.hpp"
#include "daemon/worker_group.hpp"
#include "metrics/admin_server.hpp"
#include "metrics/registry.hpp"
#include "pool/pool.hpp"
#include "proxy/listener.hpp"
#include "proxy/proxy_service.hpp"

namespace pgvigil::daemon {

class Application {
 public:
  explicit Application(Config config);
  ~Application();

  // Runs until SIGTERM or SIGINT and a clean shutdown. Returns the process exit code.
  int run();

 private:
  boost::asio::awaitable<void> handle_signals();
  metrics::ReadyState readiness() const;
  void build_proxy();

  Config config_;
  WorkerGroup workers_;
  metrics::Registry registry_;
  std::vector<std::shared_ptr<pool::Pool>> pools_;
  std::unique_ptr<metrics::AdminServer> admin_;
  std::unique_ptr<proxy::ProxyService> proxy_;
  std::unique_ptr<proxy::Listener> listener_;
  std::optional<boost::asio::signal_set> signals_;
};

}  // namespace pgvigil::daemon
