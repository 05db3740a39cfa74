#pragma once
// The admin HTTP/1.1 endpoint: /metrics for Prometheus, /healthz and /readyz for supervisors.
// Runs on the caller's io_context and starts no threads. Every method, and the readiness
// check, runs on that io_context's single thread (or while it is not running).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>
#include <openssl/types.h>

#include "metrics/admin_routes.hpp"
#include "metrics/ready_state.hpp"
#include "metrics/registry.hpp"

namespace pgvigil::metrics {
namespace detail {
struct AdminServerState;
}

struct AdminServerOptions {
  // An IPv4 or IPv6 literal ("127.0.0.1", "::", "[::1]"); no name lookup.
  std::string host = "127.0.0.1";
  // 0 binds an ephemeral port; AdminServer::port() tells which.
  std::uint16_t port = 0;
  // Longest wait for one whole request, or for one response to be written; a client that
  // stays silent longer is disconnected.
  std::chrono::milliseconds request_timeout{std::chrono::seconds(10)};
  // Admin requests are tiny GETs; anything bigger is refused (431 / 413) and disconnected.
  std::size_t max_header_bytes = 8 * 1024;
  std::size_t max_body_bytes = 4 * 1024;
  // Longest wait for a whole request once a connection is open or its last answer written:
  // admin requests are a few hundred bytes, so a client that takes longer is sending half a
  // header on purpose (the read deadline is the smaller of this and request_timeout).
  std::chrono::milliseconds header_timeout{std::chrono::seconds(2)};
  // Sessions at once, so scrapers cannot exhaust descriptors. A connection beyond it pushes out
  // the session that has waited longest for its request (a half-sent header, an idle keep-alive),
  // so slow clients cannot keep /healthz and /readyz from answering; when every session is busy
  // answering, the new connection is closed instead.
  std::size_t max_sessions = 64;
  // POST /pause and /resume (admin_routes.hpp): taken on a loopback address, or with this
  // bearer token; no handler, no control paths.
  ControlHandler control;
  std::string token;
  // HTTPS only, with this context (its certificate); null: plain HTTP.
  std::shared_ptr<SSL_CTX> tls;
};

class AdminServer {
 public:
  // `registry` must outlive the server; `ready_check` is called on every /readyz request and
  // must not block (it runs on the event loop).
  AdminServer(boost::asio::io_context& io, AdminServerOptions options, const Registry& registry,
              ReadyCheck ready_check);
  // Stops (see stop()).
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Binds and listens, then accepts on the io_context. Throws std::system_error naming the
  // address when the address is not a literal or cannot be bound; throws std::logic_error
  // when called twice.
  void start();

  // Closes the listener and every open session. Idempotent. Once the io_context has run the
  // resulting cancellations, the server holds no pending work, so io_context::run() returns.
  void stop();

  // A reload's certificate: connections accepted from now on are shown it; open ones keep
  // theirs. Switching between HTTP and HTTPS needs a restart, so null is ignored while serving
  // HTTPS, and a context while serving HTTP.
  void replace_tls(std::shared_ptr<SSL_CTX> tls);

  // The bound port (meaningful after start(), also after stop()).
  std::uint16_t port() const;

 private:
  // Shared with the accept loop and the sessions, which may outlive this object until the
  // io_context has delivered their cancellation.
  std::shared_ptr<detail::AdminServerState> state_;
  std::uint16_t bound_port_ = 0;
};

}  // namespace pgvigil::metrics
