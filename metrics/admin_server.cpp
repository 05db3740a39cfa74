#include "metrics/admin_server.hpp"

#include <algorithm>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <unordered_map>
#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/write.hpp>
#include <openssl/ssl.h>  // SSL_CTX_up_ref

namespace pgvigil::metrics {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;

namespace {

// Errors are expected branches here (clients vanish, time out, send junk), so every
// awaited operation reports them as a value rather than an exception.
constexpr auto kAsTuple = asio::as_tuple(asio::use_awaitable);

// Pause after a failed accept (out of descriptors, say): retrying at once would spin.
constexpr std::chrono::milliseconds kAcceptRetryPause{100};

std::string printable(const tcp::endpoint& endpoint) {
  const auto address = endpoint.address().to_string();
  const auto port = std::to_string(endpoint.port());
  return endpoint.address().is_v6() ? "[" + address + "]:" + port : address + ":" + port;
}

// The answer owed to a client whose request could not be read, if any: a malformed or
// oversized request gets a status saying so; a vanished or silent client gets nothing.
std::optional<http::status> status_for_read_error(const beast::error_code& error) {
  if (error == http::error::header_limit) return http::status::request_header_fields_too_large;
  if (error == http::error::body_limit) return http::status::payload_too_large;
  if (error == http::error::end_of_stream || error == http::error::partial_message) {
    return std::nullopt;
  }
  if (error.category() == beast::error_code(http::error::bad_target).category()) {
    return http::status::bad_request;
  }
  return std::nullopt;
}

}  // namespace

namespace detail {

struct AdminServerState {
  AdminServerState(asio::io_context& io_context, AdminServerOptions server_options,
                   const Registry& metrics_registry, ReadyCheck check)
      : io(io_context),
        options(std::move(server_options)),
        registry(metrics_registry),
        ready_check(std::move(check)),
        control{options.control, options.token, true},
        acceptor(io_context) {}

  asio::io_context& io;
  const AdminServerOptions options;
  // Used only while !stopped: after stop() the owner may destroy the registry while
  // coroutines still hold this state until they observe their cancellation.
  const Registry& registry;
  const ReadyCheck ready_check;
  AdminControl control;  // on_loopback is set by start(), from the bound address
  tcp::acceptor acceptor;
  // HTTPS: the context new connections are shown (a reload replaces it); null: plain HTTP.
  std::shared_ptr<asio::ssl::context> tls;
  bool stopped = false;
  // Open sessions, so stop() can close them (weak so a finished session frees its socket), and
  // since when each has been waiting for its next request (nullopt while it answers one).
  struct Listed {
    std::weak_ptr<beast::tcp_stream> stream;
    std::optional<std::chrono::steady_clock::time_point> awaiting_since;
  };
  std::unordered_map<std::uint64_t, Listed> sessions;
  std::uint64_t next_session_id = 0;
};

}  // namespace detail

namespace {

using StatePtr = std::shared_ptr<detail::AdminServerState>;

// Keeps a session listed in the state for exactly as long as its coroutine runs.
class SessionListing {
 public:
  SessionListing(StatePtr state, const std::shared_ptr<beast::tcp_stream>& stream)
      : state_(std::move(state)), id_(state_->next_session_id++) {
    state_->sessions.emplace(id_, detail::AdminServerState::Listed{stream, std::nullopt});
  }
  ~SessionListing() { state_->sessions.erase(id_); }
  // Waiting for the next request (true) or answering one (false). A session pushed out is no
  // longer listed.
  void awaiting_request(bool awaiting) {
    const auto found = state_->sessions.find(id_);
    if (found == state_->sessions.end()) return;
    found->second.awaiting_since =
        awaiting ? std::optional(std::chrono::steady_clock::now()) : std::nullopt;
  }
  SessionListing(const SessionListing&) = delete;
  SessionListing& operator=(const SessionListing&) = delete;

 private:
  StatePtr state_;
  std::uint64_t id_;
};

// Reads requests and answers them on `stream` (the TCP stream itself, or TLS over it) while the
// client keeps the connection alive. Each read and each write has its own deadline on `tcp`, so
// a client that stops talking (or stops reading) is dropped after request_timeout.
template <typename Stream>
asio::awaitable<void> answer_requests(detail::AdminServerState& state, beast::tcp_stream& tcp,
                                      Stream& stream, SessionListing& listing) {
  const auto& options = state.options;
  beast::flat_buffer buffer;
  for (;;) {
    // A parser reads one message only; limits are set per request.
    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(options.max_header_bytes));
    parser.body_limit(options.max_body_bytes);

    tcp.expires_after(std::min(options.request_timeout, options.header_timeout));
    listing.awaiting_request(true);
    const auto [read_error, read_bytes] =
        co_await http::async_read(stream, buffer, parser, kAsTuple);
    if (state.stopped) co_return;
    listing.awaiting_request(false);
    if (read_error) {
      if (const auto status = status_for_read_error(read_error)) {
        // After a bad request the stream position is unknown: answer, then close.
        auto refusal = plain_response(*status, std::string(obsolete_reason(*status)) + "\n",
                                      11, false);
        tcp.expires_after(options.request_timeout);
        co_await http::async_write(stream, refusal, kAsTuple);
      }
      co_return;
    }

    auto response =
        route_admin_request(parser.get(), state.registry, state.ready_check, state.control);
    tcp.expires_after(options.request_timeout);
    const auto [write_error, written_bytes] =
        co_await http::async_write(stream, response, kAsTuple);
    if (write_error || !response.keep_alive() || state.stopped) co_return;
  }
}

// One connection: over TLS when the endpoint has a certificate (the handshake bounded like a
// request's header, and pushed out like one when sessions run short), else in the clear.
asio::awaitable<void> serve_session(StatePtr state, tcp::socket socket) {
  auto tcp = std::make_shared<beast::tcp_stream>(std::move(socket));
  SessionListing listing(state, tcp);
  const auto tls = state->tls;  // a reload changes the certificate of later connections only
  if (tls == nullptr) {
    co_await answer_requests(*state, *tcp, *tcp, listing);
  } else {
    asio::ssl::stream<beast::tcp_stream&> secure(*tcp, *tls);
    tcp->expires_after(std::min(state->options.request_timeout, state->options.header_timeout));
    listing.awaiting_request(true);
    const auto [handshake_error] =
        co_await secure.async_handshake(asio::ssl::stream_base::server, kAsTuple);
    if (handshake_error || state->stopped) co_return;
    co_await answer_requests(*state, *tcp, secure, listing);
    // close_notify, so the client can tell the end from a cut. The wait for the client's own
    // is bounded like a header, and the session may be pushed out meanwhile.
    tcp->expires_after(std::min(state->options.request_timeout, state->options.header_timeout));
    listing.awaiting_request(true);
    co_await secure.async_shutdown(kAsTuple);
  }
  if (state->stopped) co_return;
  // Half-close so the client reads the last response to its end instead of a reset.
  beast::error_code ignored;
  tcp->socket().shutdown(tcp::socket::shutdown_send, ignored);
}

// Closes the session that has waited longest for a request, to make room; false when every
// session is busy answering one.
bool push_out_slowest(detail::AdminServerState& state) {
  auto slowest = state.sessions.end();
  for (auto it = state.sessions.begin(); it != state.sessions.end(); ++it) {
    if (!it->second.awaiting_since) continue;
    if (slowest == state.sessions.end() ||
        *it->second.awaiting_since < *slowest->second.awaiting_since) {
      slowest = it;
    }
  }
  if (slowest == state.sessions.end()) return false;
  if (auto stream = slowest->second.stream.lock()) stream->close();
  state.sessions.erase(slowest);  // its room is free now; its coroutine ends on its own
  return true;
}

asio::awaitable<void> accept_connections(StatePtr state) {
  for (;;) {
    auto [error, socket] = co_await state->acceptor.async_accept(kAsTuple);
    if (state->stopped) co_return;
    if (error) {
      asio::steady_timer pause(state->io, kAcceptRetryPause);
      co_await pause.async_wait(kAsTuple);
      continue;
    }
    if (state->sessions.size() >= state->options.max_sessions && !push_out_slowest(*state)) {
      beast::error_code ignored;
      socket.close(ignored);  // Every session is answering: refuse by closing, reading nothing.
      continue;
    }
    asio::co_spawn(state->io, serve_session(state, std::move(socket)), asio::detached);
  }
}

// Accepts "[::1]" as well as "::1", since that is how IPv6 addresses appear next to ports.
std::string_view unbracketed(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    return host.substr(1, host.size() - 2);
  }
  return host;
}

}  // namespace

namespace {

// asio's wrapper takes ownership of one reference; the caller keeps its own.
std::shared_ptr<asio::ssl::context> wrap(const std::shared_ptr<SSL_CTX>& tls) {
  if (tls == nullptr) return nullptr;
  ::SSL_CTX_up_ref(tls.get());
  return std::make_shared<asio::ssl::context>(tls.get());
}

}  // namespace

AdminServer::AdminServer(asio::io_context& io, AdminServerOptions options,
                         const Registry& registry, ReadyCheck ready_check)
    : state_(std::make_shared<detail::AdminServerState>(io, std::move(options), registry,
                                                        std::move(ready_check))) {
  state_->tls = wrap(state_->options.tls);
}

void AdminServer::replace_tls(std::shared_ptr<SSL_CTX> tls) {
  if ((tls == nullptr) != (state_->tls == nullptr)) return;
  state_->tls = wrap(tls);
}

AdminServer::~AdminServer() { stop(); }

void AdminServer::start() {
  auto& state = *state_;
  if (state.acceptor.is_open() || state.stopped) {
    throw std::logic_error("admin server: start() after start() or stop()");
  }
  beast::error_code error;
  const auto address = asio::ip::make_address(unbracketed(state.options.host), error);
  if (error) {
    throw std::system_error(error, "admin server: listen address '" + state.options.host +
                                       "' is not an IPv4 or IPv6 literal");
  }
  const tcp::endpoint endpoint(address, state.options.port);
  // 0.0.0.0 and :: are not loopback: they take connections from anywhere.
  state.control.on_loopback = address.is_loopback();
  const auto throw_if_failed = [&](const char* step) {
    if (!error) return;
    beast::error_code ignored;
    state.acceptor.close(ignored);
    throw std::system_error(error, "admin server: cannot " + std::string(step) + " " +
                                       printable(endpoint));
  };
  state.acceptor.open(endpoint.protocol(), error);
  throw_if_failed("open a socket for");
  // Lets a restarted daemon bind while the old process's connections sit in TIME_WAIT.
  state.acceptor.set_option(asio::socket_base::reuse_address(true), error);
  throw_if_failed("set SO_REUSEADDR on");
  state.acceptor.bind(endpoint, error);
  throw_if_failed("bind");
  state.acceptor.listen(asio::socket_base::max_listen_connections, error);
  throw_if_failed("listen on");
  bound_port_ = state.acceptor.local_endpoint().port();
  asio::co_spawn(state.io, accept_connections(state_), asio::detached);
}

void AdminServer::stop() {
  auto& state = *state_;
  if (state.stopped) return;
  state.stopped = true;
  beast::error_code ignored;
  state.acceptor.close(ignored);
  for (auto& [id, session] : state.sessions) {
    if (auto stream = session.stream.lock()) stream->close();
  }
}

std::uint16_t AdminServer::port() const { return bound_port_; }

}  // namespace pgvigil::metrics
