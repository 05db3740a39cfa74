#include "proxy/client_session.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "proxy/authenticator.hpp"
#include "proxy/buffer_pool.hpp"
#include "proxy/frame_reader.hpp"
#include "proxy/wire/backend_messages.hpp"
#include "proxy/wire/frame_decoder.hpp"
#include "proxy/wire/frontend_parser.hpp"
#include "proxy/wire/protocol.hpp"
#include "proxy/wire/startup_message.hpp"

namespace pgvigil::proxy {
namespace asio = boost::asio;
using asio::awaitable;
using pool::Clock;
using pool::Death;
using pool::EvictionReason;

namespace {

// The settings PostgreSQL reports with ParameterStatus (GUC_REPORT), in its spelling.
constexpr const char* kReportedParameters[] = {
    "application_name", "client_encoding",   "DateStyle",       "default_transaction_read_only",
    "in_hot_standby",   "integer_datetimes", "IntervalStyle",   "is_superuser",
    "server_encoding",  "server_version",    "session_authorization",
    "standard_conforming_strings",           "TimeZone"};

std::string lower(std::string text) {
  for (auto& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

ClientError checkout_error(const pool::CheckoutError& error, const std::string& database,
                           pool::Milliseconds timeout) {
  switch (error.kind) {
    case pool::CheckoutError::Kind::timeout:
      return {sqlstate::kTooManyConnections,
              "no server connection for database \"" + database + "\" became free within " +
                  std::to_string(timeout.count()) + " ms",
              error.detail,
              "Every connection of the pool is in use: raise pool.max_size or "
              "pool.checkout_timeout, or look for long transactions."};
    case pool::CheckoutError::Kind::server_unreachable:
      return {sqlstate::kConnectionFailure,
              "pgvigil cannot reach the server for database \"" + database + "\"", error.detail,
              "pgvigil keeps retrying with back-off; see its log and pgvigil_connect_failures_total."};
    case pool::CheckoutError::Kind::shutting_down:
      return {sqlstate::kAdminShutdown, "pgvigil is shutting down", "", ""};
  }
  return {sqlstate::kConnectionFailure, error.detail, "", ""};
}

ClientError shutdown_error() {
  return {sqlstate::kAdminShutdown, "terminating connection: pgvigil is shutting down", "",
          "Reconnect: another pgvigil instance or the restarted one will serve you."};
}

}  // namespace

ClientSession::ClientSession(ProxyService& service, ClientStream::Executor executor, int fd)
    : service_(service),
      stream_(std::make_unique<ClientStream>(executor, fd)),
      timer_(std::make_unique<asio::steady_timer>(executor)),
      client_scanner_(service.settings().max_message_bytes),
      // What a server sends is bounded by PostgreSQL itself (1 GiB); a larger length is garbage.
      server_scanner_(wire::kMaxLargeMessageSize) {}

ClientSession::~ClientSession() {
  if (cancel_key_) service_.cancels().remove(*cancel_key_);
  if (counted_in_route_ && route_->metrics) route_->metrics->client_disconnected();
  service_.client_left();
}

void ClientSession::start(ProxyService& service, ClientStream::Executor executor, int fd) {
  auto session = std::make_shared<ClientSession>(service, executor, fd);
  asio::co_spawn(
      executor, [session] { return session->handshake(); }, asio::detached);
}

bool ClientSession::transaction_pooling() const {
  return route_->settings.pool_mode == PoolMode::transaction;
}

// --- startup, on the accepting worker ----------------------------------------------------------

awaitable<void> ClientSession::handshake() {
  // A client that connects and says nothing is dropped after startup_timeout.
  timer_->expires_after(service_.settings().startup_timeout);
  timer_->async_wait([weak = weak_from_this()](boost::system::error_code ec) {
    if (auto self = weak.lock(); self && !ec) self->stream_->cancel();
  });

  wire::DecoderLimits limits;
  limits.max_message_size = service_.settings().max_message_bytes;
  FrameReader reader(*stream_, limits);
  wire::StartupMessage startup;
  while (true) {
    auto next = co_await reader.next();
    if (auto* error = std::get_if<ClientError>(&next)) co_return fail(*error);
    const auto& frame = std::get<OwnedFrame>(next);
    if (frame.startup_code == wire::kSslRequestCode || frame.startup_code == wire::kGssEncRequestCode) {
      // TLS to clients is not offered (yet): 'N' tells the client to go on in the clear.
      std::string refusal;
      wire::append_encryption_refusal(refusal);
      boost::system::error_code ec;
      co_await stream_->write_all(refusal, ec);
      if (ec) co_return close();
      continue;
    }
    if (frame.startup_code == wire::kCancelRequestCode) {
      if (auto key = wire::parse_cancel_request(frame.payload)) {
        service_.cancels().cancel({key->process_id, key->secret_key});
      }
      co_return close();  // a cancel connection gets no answer, as in PostgreSQL
    }
    if ((frame.startup_code >> 16) != wire::kProtocolMajor3) {
      co_return fail({sqlstate::kFeatureNotSupported,
                               "unsupported frontend protocol " +
                                   std::to_string(frame.startup_code >> 16) + "." +
                                   std::to_string(frame.startup_code & 0xffff) +
                                   ": pgvigil speaks protocol 3.0",
                               "", ""});
    }
    auto parsed = wire::parse_startup_message(frame.payload, frame.startup_code);
    if (!parsed) co_return fail({sqlstate::kProtocolViolation, parsed.error(), "", ""});
    startup = std::move(parsed).value();
    break;
  }

  route_ = service_.find_route(startup.database);
  if (route_ == nullptr) {
    co_return fail({sqlstate::kInvalidCatalogName,
                             "database \"" + startup.database + "\" does not exist in pgvigil",
                             "", "pgvigil serves: " + service_.route_names()});
  }
  if (!startup.replication.empty()) {
    co_return fail({sqlstate::kFeatureNotSupported,
                             "replication connections are not supported through pgvigil", "",
                             "Connect to the server directly for replication."});
  }
  auto settings = settings_from_startup(startup);
  if (!settings) co_return fail({sqlstate::kProtocolViolation, settings.error(), "", ""});
  settings_ = std::make_shared<const SettingMap>(std::move(settings).value());

  std::vector<std::string> unsupported;
  for (const auto& parameter : startup.others) {
    if (parameter.name.starts_with("_pq_.")) unsupported.push_back(parameter.name);
  }
  if (startup.minor_version > 0 || !unsupported.empty()) {
    std::string negotiate;
    wire::append_negotiate_protocol_version(negotiate, 0, unsupported);
    boost::system::error_code ec;
    co_await stream_->write_all(negotiate, ec);
    if (ec) co_return close();
  }

  reader.enter_normal_phase();
  if (auto error = co_await authenticate(*stream_, reader, route_->settings.auth_method,
                                         startup.user, service_.users())) {
    co_return fail(*error);
  }
  timer_.reset();  // cancels the startup deadline; an idle session keeps no timer

  // Move to the pool's worker: release the socket here, adopt it there.
  auto leftover = reader.take_leftover();
  // Every executor in pgvigil is an io_context's (one per worker).
  const auto home = *route_->pool->executor().target<ClientStream::Executor>();
  const int fd = stream_->release();
  stream_.reset();
  if (!leftover.empty()) pending_input_ = std::make_unique<std::string>(std::move(leftover));
  auto task = [self = shared_from_this(), home, fd] {
    self->stream_ = std::make_unique<ClientStream>(home, fd);
    return self->begin();
  };
  asio::co_spawn(home, std::move(task), asio::detached);
}

// --- on the pool's worker -------------------------------------------------------------------

std::string ClientSession::startup_reply() const {
  std::string reply;
  for (const auto& [name, value] : route_->server_parameters) {
    // The client sees the values it asked for: they are applied before each of its queries.
    auto wanted = settings_->find(lower(name));
    wire::append_parameter_status(reply, name, wanted != settings_->end() ? wanted->second : value);
  }
  wire::append_backend_key_data(reply, cancel_key_->process_id, cancel_key_->secret);
  wire::append_ready_for_query(reply, wire::TransactionStatus::idle);
  return reply;
}

awaitable<void> ClientSession::begin() {
  if (service_.draining()) co_return fail(shutdown_error());
  // Session pooling takes its server connection now; transaction pooling only needs one when
  // nothing is known yet about the server (its version, encoding) to tell the client.
  if (!transaction_pooling() || route_->server_parameters.empty()) {
    if (auto error = co_await acquire_server()) co_return fail(*error);
    if (transaction_pooling()) return_server(std::nullopt);
  }
  settings_ = intern_settings(*route_, *settings_);
  cancel_key_ = service_.cancels().add(weak_from_this());
  if (!cancel_key_) {
    co_return fail({sqlstate::kInternalError,
                    "cannot create a cancel key: the system's random source failed", "", ""});
  }
  if (route_->metrics) route_->metrics->client_connected();
  counted_in_route_ = true;
  const auto reply = startup_reply();
  boost::system::error_code ec;
  co_await stream_->write_all(reply, ec);
  if (ec) co_return co_await end_session();
  if (pending_input_) co_return start_relay();
  park();
}

awaitable<std::optional<ClientError>> ClientSession::acquire_server() {
  if (!server_) {  // the relay may already hold one that needs settings applied
    auto result = co_await route_->pool->checkout(route_->checkout_timeout);
    if (auto* error = std::get_if<pool::CheckoutError>(&result)) {
      co_return checkout_error(*error, route_->settings.database, route_->checkout_timeout);
    }
    server_ = std::get<pool::Lease>(std::move(result));
  }
  if (route_->server_parameters.empty()) {
    for (const char* name : kReportedParameters) {
      route_->server_parameters.emplace_back(name, server_->parameter_status(name));
    }
  }
  const auto statements = settings_statements(*settings_, server_->applied_settings());
  if (statements.empty()) co_return std::nullopt;
  auto failure = co_await server_->execute(statements, Clock::now() + route_->checkout_timeout);
  if (!failure) {
    server_->set_applied_settings(settings_);
    co_return std::nullopt;
  }
  // A setting the server refuses (a bad DateStyle) is the client's error; the connection
  // itself is fine unless the statement killed it.
  return_server(failure->death);
  co_return ClientError{failure->death ? sqlstate::kConnectionFailure : failure->sqlstate,
                        failure->message, "while applying the client's startup settings", ""};
}

// --- the relay's slow paths (the relay itself is in client_session_relay.cpp) ----------------
// Each was counted in io_in_flight_ by its caller and comes back to the relay when done.

void ClientSession::wait_for_server(std::size_t size) {
  ++io_in_flight_;
  route_->pool->wait_for_connection(
      route_->checkout_timeout, [self = shared_from_this(), size](pool::CheckoutResult result) {
        --self->io_in_flight_;
        self->on_checkout(std::move(result), size);
      });
}

void ClientSession::on_checkout(pool::CheckoutResult result, std::size_t size) {
  if (auto* lease = std::get_if<pool::Lease>(&result)) server_ = std::move(*lease);
  if (stop_) return continue_ending();
  if (const auto* error = std::get_if<pool::CheckoutError>(&result)) {
    return end_after_io({Ending::failure,
                         checkout_error(*error, route_->settings.database, route_->checkout_timeout),
                         std::nullopt});
  }
  if (!server_->carries(settings_)) return start_acquire(size);
  forward_to_server(size);
}

void ClientSession::start_acquire(std::size_t size) {
  ++io_in_flight_;
  auto task = [self = shared_from_this(), size] { return self->acquire_then_forward(size); };
  asio::co_spawn(stream_->get_executor(), std::move(task), asio::detached);
}

awaitable<void> ClientSession::acquire_then_forward(std::size_t size) {
  auto error = co_await acquire_server();
  --io_in_flight_;
  if (stop_) co_return continue_ending();
  if (error) co_return end_after_io({Ending::failure, std::move(*error), std::nullopt});
  forward_to_server(size);
}

awaitable<void> ClientSession::write_rest_to_server(std::size_t from, std::size_t to) {
  boost::system::error_code ec;
  co_await server_->write_all(client_buffer_.span().subspan(from, to - from), ec);
  --io_in_flight_;
  if (stop_) co_return continue_ending();
  if (ec) {
    co_return end_after_io(server_lost(server_->diagnose_failure(true, "writing to server")));
  }
  after_forward_to_server();
}

awaitable<void> ClientSession::write_rest_to_client(std::size_t from, std::size_t to) {
  boost::system::error_code ec;
  co_await stream_->write_all(server_buffer_.span().subspan(from, to - from), ec);
  --io_in_flight_;
  writing_to_client_ = false;
  if (stop_) co_return continue_ending();
  if (ec) co_return end_after_io({shutdown_requested_ ? Ending::shutdown : Ending::quit, {}, {}});
  after_forward_to_client();
}

awaitable<void> ClientSession::return_after_cancels() {
  co_await wait_for_cancels();
  --io_in_flight_;
  returning_server_ = false;
  if (stop_) co_return continue_ending();
  give_server_back();
}

// --- endings --------------------------------------------------------------------------------

awaitable<void> ClientSession::wait_for_cancels() {
  // A cancel being sent for this connection must land before anyone else may use it.
  while (cancels_in_flight_ > 0) {
    if (!timer_) timer_ = std::make_unique<asio::steady_timer>(stream_->get_executor());
    timer_->expires_at(Clock::time_point::max());
    co_await timer_->async_wait(asio::as_tuple(asio::use_awaitable));
  }
}

void ClientSession::return_server(std::optional<Death> death) {
  if (!server_) return;
  route_->pool->give_back(std::move(server_), std::move(death));
  server_.reset();
}

awaitable<void> ClientSession::give_back_at_end() {
  if (server_) co_await wait_for_cancels();
  if (server_) {
    const bool clean =
        server_scanner_.at_boundary() && tracker_.idle_and_answered(client_scanner_.at_boundary());
    if (!clean) {
      return_server(shutdown_forced_
                        ? Death{EvictionReason::shutdown, "pgvigil stopped mid-transaction",
                                Clock::now()}
                        : Death{EvictionReason::dirty_return,
                                tracker_.status() != 'I' ? "client left inside a transaction"
                                                         : "client left with a request unanswered",
                                Clock::now()});
    } else if (!transaction_pooling() && !route_->settings.reset_query.empty()) {
      auto failure = co_await server_->execute(route_->settings.reset_query,
                                               Clock::now() + route_->checkout_timeout);
      if (failure) {
        return_server(failure->death ? failure->death
                                     : Death{EvictionReason::dirty_return,
                                             "reset query failed: " + failure->message,
                                             Clock::now()});
      } else {
        // The reset returns every setting to its default (DISCARD ALL, RESET ALL).
        server_->set_applied_settings(nullptr);
        return_server(std::nullopt);
      }
    } else {
      return_server(std::nullopt);
    }
  }
}

awaitable<void> ClientSession::end_session() {
  co_await give_back_at_end();
  close();
}

awaitable<void> ClientSession::finish_for_shutdown() {
  co_await give_back_at_end();
  fail(shutdown_error());
}

awaitable<void> ClientSession::end_relay_with_error() {
  if (server_) {
    co_await wait_for_cancels();
    if (stop_->ending == Ending::client_violation) {
      return_server(
          Death{EvictionReason::dirty_return, "client broke the protocol mid-request", Clock::now()});
    } else if (stop_->death) {
      return_server(stop_->death);
    }
  }
  fail(std::move(*stop_->error));
}

void ClientSession::fail(ClientError error) {
  if (!error.sqlstate.empty()) {
    if (route_ == nullptr) {
      service_.count_startup_error(error.sqlstate);
    } else if (route_->metrics) {
      route_->metrics->client_error(error.sqlstate);
    }
    spdlog::info("client session{}: {} {}{}", route_ ? " for " + route_->settings.database : "",
                 error.sqlstate, error.message, error.detail.empty() ? "" : ": " + error.detail);
  }
  failure_ = std::make_unique<ClientError>(std::move(error));
  asio::co_spawn(
      stream_->get_executor(), [self = shared_from_this()] { return self->send_failure(); },
      asio::detached);
}

awaitable<void> ClientSession::send_failure() {
  if (!failure_->sqlstate.empty() && stream_->is_open()) {
    const auto bytes = fatal_error_bytes(*failure_);
    boost::system::error_code ec;
    co_await stream_->write_all(bytes, ec);
  }
  if (server_) {
    co_await wait_for_cancels();
    return_server(Death{EvictionReason::dirty_return, "session failed", Clock::now()});
  }
  close();
}

void ClientSession::close() {
  if (timer_) timer_->cancel();
  if (stream_) stream_->close();
}

void ClientSession::request_cancel() {
  // stream_ is fixed once the session has moved to its worker, which is before it is
  // registered for cancels.
  asio::post(stream_->get_executor(), [self = shared_from_this()] { self->cancel_running_query(); });
}

void ClientSession::request_shutdown(bool forced) {
  asio::post(stream_->get_executor(), [self = shared_from_this(), forced] {
    self->shutdown_requested_ = true;
    self->shutdown_forced_ = self->shutdown_forced_ || forced;
    // An idle client (parked, lingering, or a session-mode relay waiting for the client) ends
    // now; a transaction in flight ends when the server's last ReadyForQuery is relayed.
    if (self->parked_ || self->between_requests() || forced) self->stream_->cancel();
    if (forced && self->server_) self->server_->detach();
  });
}

void ClientSession::cancel_running_query() {
  if (!server_ || tracker_.pending_ready() == 0) return;
  PGcancel* handle = server_->cancel_handle();
  if (handle == nullptr) return;
  ++cancels_in_flight_;
  // PQcancel opens its own connection and blocks: it runs on the blocking pool, and the lease
  // is held until it returns, so the cancel can only hit this client's query.
  asio::post(service_.blocking(),
             [self = shared_from_this(), handle, home = stream_->get_executor()] {
               char error[256] = {};
               if (PQcancel(handle, error, sizeof error) == 0) {
                 spdlog::warn("cancel request failed: {}", error);
               }
               PQfreeCancel(handle);
               asio::post(home, [self] {
                 if (--self->cancels_in_flight_ == 0 && self->timer_) self->timer_->cancel();
               });
             });
}

}  // namespace pgvigil::proxy
