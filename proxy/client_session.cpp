// ClientSession: its phases, its start on the pool's worker, the coroutine slow paths of the
// relay, and its endings. The startup is in client_session_startup.cpp. The relay's callbacks are in client_session_relay.cpp.
#include "proxy/client_session.hpp"

#include <spdlog/spdlog.h>

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "proxy/client_startup.hpp"
#include "proxy/relay/server_side.hpp"
#include "proxy/wire/backend_messages.hpp"
#include "proxy/wire/protocol.hpp"

namespace pgvigil::proxy {
namespace asio = boost::asio;
using asio::awaitable;
using pool::Clock;
using pool::Death;
using pool::EvictionReason;


ClientError ClientSession::checkout_failure(const pool::CheckoutError& error) const {
  const auto& database = route_->settings.database;
  const auto timeout = route_->checkout_timeout;
  switch (error.kind) {
    case pool::CheckoutError::Kind::timeout:
      return {sqlstate::kTooManyConnections,
              "no server connection for database \"" + database + "\" became free within " +
                  std::to_string(timeout.count()) + " ms",
              error.detail,
              "Every connection of the pool is in use: raise pool.max_size or "
              "pool.checkout_timeout, or look for long transactions.", true};
    case pool::CheckoutError::Kind::server_unreachable:
      return {
          sqlstate::kConnectionFailure,
          "pgvigil cannot reach the server for database \"" + database + "\"", error.detail,
          "pgvigil keeps retrying with back-off; see its log and pgvigil_connect_failures_total.",
          true};
    case pool::CheckoutError::Kind::server_down:
      return {sqlstate::kConnectionFailure,
              "the server for database \"" + database + "\" is down", error.detail,
              "pool.fail_fast is on: clients are refused at once until the server answers "
              "again; see pgvigil_server_health.", true};
    case pool::CheckoutError::Kind::paused:
      return {sqlstate::kTooManyConnections,
              "database \"" + database + "\" is paused for maintenance", error.detail,
              "An operator paused it (a switchover under way): retry in a moment.", true};
    case pool::CheckoutError::Kind::shutting_down:
      return {sqlstate::kAdminShutdown, "pgvigil is shutting down", "", ""};
  }
  return {sqlstate::kConnectionFailure, error.detail, "", ""};
}

std::string_view to_string(ClientSession::Phase phase) {
  switch (phase) {
    case ClientSession::Phase::startup:
      return "startup";
    case ClientSession::Phase::authenticating:
      return "authenticating";
    case ClientSession::Phase::idle:
      return "idle";
    case ClientSession::Phase::waiting_for_server:
      return "waiting_for_server";
    case ClientSession::Phase::relaying:
      return "relaying";
    case ClientSession::Phase::pinned:
      return "pinned";
    case ClientSession::Phase::ending:
      return "ending";
  }
  return "unknown";
}

ClientSession::ClientSession(ProxyService& service, stream::Executor executor, int fd)
    : service_(service),
      stream_(executor),
      forwarder_(service.settings().max_message_bytes),
      // What a server sends is bounded by PostgreSQL itself (1 GiB); a larger length is garbage.
      responses_(wire::kMaxLargeMessageSize) {
  stream_.attach(fd, stream::Ownership::owned);
}

// An idle client is this object (with make_shared's 16-byte control block, in one malloc chunk
// of 320 bytes), its socket's reactor state and its parked wait: bench/run.sh measures bytes per
// idle client against PgBouncer's. A member that grows it past this costs a 16-byte step for
// every client; put what is seldom needed in Occasional.
static_assert(sizeof(ClientSession) <= 296, "a session outgrew its 320-byte malloc chunk");

ClientSession::Occasional& ClientSession::occasional() {
  if (!occasional_) occasional_ = std::make_unique<Occasional>();
  return *occasional_;
}

ClientSession::~ClientSession() {
  if (has_cancel_key_) {
    service_.cancels().remove(cancel_key_);
    if (route_->metrics) route_->metrics->client_disconnected();
    if (pin_ && route_->metrics) route_->metrics->client_pinned(relay::to_string(*pin_), -1);
  }
  if (counted_) service_.client_left();
}

void ClientSession::start(ProxyService& service, stream::Executor executor, int fd,
                          const sockaddr_storage& peer_address) {
  auto session = std::make_shared<ClientSession>(service, executor, fd);
  asio::co_spawn(
      executor, [session, peer_address] { return session->handshake(peer_address); },
      asio::detached);
}

void ClientSession::enter(Phase next, const char* why) {
  if (phase_ == next) return;
  // Trace level: it happens twice per transaction. Off, it costs one comparison: the logger is
  // looked up once (the daemon sets it before any session exists), since spdlog's registry
  // lookup behind spdlog::should_log showed in profiles of the relay.
  static spdlog::logger* const logger = spdlog::default_logger_raw();
  if (logger->should_log(spdlog::level::trace)) {
    logger->trace("client session{}: {} -> {}: {}",
                  route_ ? " for " + route_->settings.database : "", to_string(phase_),
                  to_string(next), why);
  }
  phase_ = next;
}

void ClientSession::absorb_after_stop(Io io, boost::system::error_code ec, std::size_t size) {
  // Bytes nobody will relay: the server connection's state is unknown now.
  if (io == Io::server_read && !ec && size > 0) server_input_lost_ = true;
}

void ClientSession::absorb_after_stop(Io, pool::CheckoutResult& result) {
  // A connection granted as the session stopped still goes back through the ending.
  if (auto* lease = std::get_if<pool::Lease>(&result)) server_ = std::move(*lease);
}

bool ClientSession::transaction_pooling() const {
  return route_->settings.pool_mode == PoolMode::transaction;
}

// --- on the pool's worker -------------------------------------------------------------------

void ClientSession::append_startup_reply(std::string& reply) const {
  // The client sees the values it asked for, in the server's spelling when known (they are
  // applied before each of its queries), and the server's own for the rest: those are copied
  // as encoded once. Most clients set one reported parameter (application_name), if any.
  const auto& parameters = route_->server_parameters;
  std::array<const SettingMap::value_type*, ServerParameters::kMost> wanted{};
  for (const auto& setting : *settings_) {
    const auto i = parameters.index_of(setting.first);
    if (i != ServerParameters::npos) wanted[i] = &setting;
  }
  const auto encoded = parameters.encoded();
  reply.reserve(reply.size() + encoded.size() + 64);
  std::size_t copied = 0;  // of encoded
  for (std::size_t i = 0; i < parameters.size(); ++i) {
    if (wanted[i] == nullptr) continue;
    reply.append(encoded.substr(copied, parameters.begins_at(i) - copied));
    const auto spelt = route_->reported_spellings.find(*wanted[i]);
    wire::append_parameter_status(
        reply, parameters.name(i),
        spelt != route_->reported_spellings.end() ? spelt->second : wanted[i]->second);
    copied = parameters.ends_at(i);
  }
  reply.append(encoded.substr(copied));
  wire::append_backend_key_data(reply, cancel_key_.process_id, cancel_key_.secret);
  wire::append_ready_for_query(reply, wire::TransactionStatus::idle);
}

bool ClientSession::begins_with_server() const {
  // Session pooling takes its server connection now; transaction pooling only needs one when
  // nothing is known yet about the server (its version, encoding) or about how it spells a
  // setting the client asked for, to tell the client.
  return !transaction_pooling() || !knows_server_parameters(*route_) || spelling_unknown();
}

awaitable<void> ClientSession::begin() {
  if (service_.draining()) co_return fail(shutdown_failure());
  if (begins_with_server()) {
    enter(Phase::waiting_for_server, "the session needs its server connection");
    if (auto error = co_await acquire_server()) co_return fail(*error);
    if (transaction_pooling()) return_server(std::nullopt);
  }
  greet();
}

void ClientSession::begin_at_once() {
  if (service_.draining()) return fail(shutdown_failure());
  greet();
}

void ClientSession::greet() {
  // The startup settings: what set_settings() keeps aside once SQL changes them.
  settings_ = intern_settings(*route_, *settings_);
  // Known before the cancel registry can call in (at_home).
  if (const auto worker = service_.this_worker()) {
    home_.store(static_cast<std::uint8_t>(*worker), std::memory_order_release);
  }
  const auto key = service_.cancels().add(weak_from_this());
  if (!key) {
    return fail({sqlstate::kInternalError,
                 "cannot create a cancel key: the system's random source failed", "", ""});
  }
  cancel_key_ = *key;
  has_cancel_key_ = true;
  if (route_->metrics) route_->metrics->client_connected();
  // What authentication left to say (AuthenticationOk) and the startup reply in one write: the
  // client wakes once for all of it, as with PgBouncer or PostgreSQL.
  std::string reply;
  if (auto* greeting = occasional(&Occasional::greeting)) {
    reply = std::move(*greeting);
    occasional_->greeting.reset();
  }
  append_startup_reply(reply);
  boost::system::error_code ec;
  bool needs_read = false;
  const auto written = stream_.try_write(reply, ec, needs_read);
  if (ec) return server_ ? spawn(&ClientSession::end_session) : close();
  if (written < reply.size()) {
    // A client (or TLS) not ready to take it all at once: the rest waits in a coroutine.
    reply.erase(0, written);
    occasional().greeting = std::make_unique<std::string>(std::move(reply));
    return spawn(&ClientSession::send_rest_of_greeting);
  }
  ready_for_queries();
}

awaitable<void> ClientSession::send_rest_of_greeting() {
  // Taken out first: a failure later must not send it again (send_failure).
  const auto rest = std::move(occasional_->greeting);
  boost::system::error_code ec;
  co_await stream_.write_all(*rest, ec);
  if (ec) co_return co_await end_session();
  ready_for_queries();
}

void ClientSession::ready_for_queries() {
  enter(server_ ? Phase::pinned : Phase::idle, "ready for queries");
  if (occasional(&Occasional::pending_input)) return start_relay();
  park();
}

namespace {

// application_name is the server's as written (up to NAMEDATALEN), and its values are as many
// as the clients: not learnt. The other reported settings have few values each (a closed set,
// or time zone names), and the route keeps at most this many spellings.
constexpr std::size_t kMostSpellings = 256;
bool spelling_may_differ(const std::string& name) { return name != "application_name"; }

}  // namespace

bool ClientSession::spelling_unknown() const {
  if (route_->reported_spellings.size() >= kMostSpellings) return false;
  const auto& parameters = route_->server_parameters;
  for (const auto& setting : *settings_) {
    const auto i = parameters.index_of(setting.first);
    if (i == ServerParameters::npos || !spelling_may_differ(parameters.name(i))) continue;
    if (!route_->reported_spellings.contains(setting)) return true;
  }
  return false;
}

void ClientSession::learn_spellings() {
  for (const auto& [name, value] : route_->server_parameters.list()) {
    if (!spelling_may_differ(name) || route_->reported_spellings.size() >= kMostSpellings) continue;
    const auto wanted = find_setting(*settings_, name);
    if (wanted == settings_->end()) continue;
    // libpq has just seen the server's ParameterStatus for what was applied.
    auto spelt = server_->parameter_status(name.c_str());
    if (!spelt.empty()) route_->reported_spellings.emplace(*wanted, std::move(spelt));
  }
}

awaitable<std::optional<ClientError>> ClientSession::acquire_server() {
  if (!server_) {  // the relay may already hold one that needs settings applied
    auto result = co_await route_->pool->checkout(route_->checkout_timeout);
    if (auto* error = std::get_if<pool::CheckoutError>(&result)) {
      co_return checkout_failure(*error);
    }
    server_ = std::get<pool::Lease>(std::move(result));
  }
  if (route_->server_parameters.empty()) {
    std::vector<std::pair<std::string, std::string>> found;
    for (const char* name : kReportedParameters) {
      found.emplace_back(name, server_->parameter_status(name));
    }
    learn_server_parameters(*route_, std::move(found));
  }
  co_return co_await acquire_settings();
}

awaitable<std::optional<ClientError>> ClientSession::acquire_settings() {
  const auto statements = relay::statements_to_carry(*server_, *settings_);
  if (statements.empty()) co_return std::nullopt;
  auto failure = co_await server_->execute(statements, Clock::now() + route_->checkout_timeout);
  if (!failure) {
    relay::server_side(*server_).applied_settings = settings_;
    relay::server_side(*server_).settings_unknown = false;
    learn_spellings();
    co_return std::nullopt;
  }
  // A setting the server refuses (a bad DateStyle) is the client's error; the connection
  // itself is fine unless the statement killed it.
  return_server(failure->death);
  co_return ClientError{failure->death ? sqlstate::kConnectionFailure : failure->sqlstate,
                        failure->message, "while applying the client's startup settings", ""};
}

// --- the relay's slow paths (the relay: client_session_requests.cpp, _answers.cpp) ----------
// Each runs under a completion() of its caller's, which comes back to the relay when it is done.

awaitable<boost::system::error_code> ClientSession::write_rest_to_server(std::size_t from,
                                                                         std::size_t to) {
  boost::system::error_code ec;
  if (from == to) {
    co_await server_->stream().write_all(*occasional_->unsent, ec);
    occasional_->unsent.reset();
  } else {
    co_await server_->stream().write_all(client_buffer_.span().subspan(from, to - from), ec);
  }
  co_return ec;
}

awaitable<boost::system::error_code> ClientSession::write_rest_to_client(std::size_t from,
                                                                         std::size_t to) {
  boost::system::error_code ec;
  if (from == to) {
    co_await stream_.write_all(*occasional_->unsent_to_client, ec);
    occasional_->unsent_to_client.reset();
  } else {
    co_await stream_.write_all(server_buffer_.span().subspan(from, to - from), ec);
  }
  co_return ec;
}

awaitable<void> ClientSession::wait_for_cancels() {
  // A cancel being sent for this connection must land before anyone else may use it.
  while (cancels_in_flight_ > 0) {
    auto& timer = occasional().cancel_timer;
    if (!timer) timer = std::make_unique<asio::steady_timer>(stream_.get_executor());
    timer->expires_at(Clock::time_point::max());
    co_await timer->async_wait(asio::as_tuple(asio::use_awaitable));
  }
}

awaitable<void> ClientSession::settle_turn() {
  co_await wait_for_cancels();
  if (settings_changed_ && server_) co_await read_back_settings();
}

void ClientSession::request_cancel() {
  // Registered for cancels once it has begun on its worker; it may move later (at_home).
  at_home([](ClientSession& self) { self.cancel_running_query(); });
}

void ClientSession::request_shutdown(bool forced) {
  at_home([forced](ClientSession& self) {
    self.drain_ = forced ? Drain::now : std::max(self.drain_, Drain::after_transaction);
    // An idle client (parked, lingering, or a session-mode relay waiting for the client) ends
    // now; a transaction in flight ends when the server's last ReadyForQuery is relayed.
    if (self.pending(Io::client_wait) || self.between_requests() || forced) {
      self.stream_.cancel();
    }
    if (forced && self.server_) self.server_->detach();
  });
}

void ClientSession::cancel_running_query() {
  if (!server_ || tracker_.pending_ready() == 0) return;
  auto order = server_->cancel_order();
  if (!order) return;
  ++cancels_in_flight_;
  // The cancel opens its own connection and blocks: it runs on the blocking pool, and the lease
  // is held until it returns, so the cancel can only hit this client's query.
  asio::post(service_.blocking(), [self = shared_from_this(), order = std::move(order),
                                   home = stream_.get_executor()] {
    std::string error;
    if (!order(error)) spdlog::warn("cancel request failed: {}", error);
    asio::post(home, [self] {
      auto* timer = self->occasional(&Occasional::cancel_timer);
      if (--self->cancels_in_flight_ == 0 && timer) timer->cancel();
    });
  });
}

}  // namespace pgvigil::proxy