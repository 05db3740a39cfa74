// Transaction pooling: what a client leaves in the server session beyond its transaction. Its
// settings follow it from one server connection to the next (a reported setting through the
// server's ParameterStatus, a lone SET through its answer, anything else read back from
// pg_settings once the transaction is over); state that cannot follow it (a role, LISTEN, a lock,
// a temporary table, a custom setting) pins it to its server connection.

#include <spdlog/spdlog.h>

#include "proxy/client_session.hpp"
#include "proxy/relay/server_side.hpp"
#include "proxy/relay/session_state_cache.hpp"
#include "proxy/relay/settings_read_back.hpp"
#include "proxy/wire/backend_parser.hpp"
#include "proxy/wire/extended_query.hpp"

namespace pgvigil::proxy {
namespace asio = boost::asio;
using asio::awaitable;
using pool::Clock;

awaitable<void> ClientSession::read_back_settings() {
  settings_changed_ = false;
  auto answer = co_await server_->query_value(relay::kSessionSettingsQuery,
                                              Clock::now() + route_->checkout_timeout);
  if (answer.error && answer.error->death) co_return return_server(answer.error->death);
  const auto read = answer.value && !answer.error ? relay::parse_session_settings(*answer.value)
                                                  : std::nullopt;
  auto merged = read ? relay::merge_read_back(*settings_, startup_settings(), *read) : std::nullopt;
  if (!merged) {
    // What the session carries is unknown, or it took another role: it stays the client's.
    const std::string why = read           ? "its role changed unseen"
                            : answer.error ? "its settings could not be read back: " +
                                                 answer.error->message
                                           : "its settings could not be read back";
    spdlog::warn("client session for {}: {}; the client keeps its server connection",
                 route_->settings.database, why);
    co_return pin(read ? relay::PinCause::role : relay::PinCause::setting);
  }
  set_settings(intern_settings(*route_, std::move(merged->settings)));
  auto& side = relay::server_side(*server_);
  side.settings_unknown = !merged->connection_carries_them;
  side.applied_settings = settings_;
}

void ClientSession::settle_pending_set(std::span<const char> whole) {
  constexpr std::string_view kSetDone{"C\0\0\0\x08SET\0", 9};
  auto set = std::move(occasional_->pending_set);  // the caller saw it there
  // Anything but its CommandComplete (an error's ReadyForQuery): the SET did not happen.
  if (std::string_view(whole.data(), whole.size()) != kSetDone) return;
  adopt_setting(std::move(set->name), kSqlValueMark + set->value);
}

void ClientSession::adopt_reported_setting(std::span<const char> whole) {
  const auto body = relay::body_of(whole);
  if (body.empty()) return;
  const auto status = wire::parse_parameter_status(body);
  if (!status) return;
  // The server was promoted while this client held the connection: it goes when given back.
  if (status->name == "in_hot_standby") return server_->note_hot_standby_report(status->value);
  if (!transaction_pooling()) return;
  // The role changed (SET ROLE, SET SESSION AUTHORIZATION, however they were sent): the
  // connection is the client's own for the rest of its session.
  if (status->name == "session_authorization" || status->name == "is_superuser") {
    if (!pin_) pin(relay::PinCause::role);
    return;
  }
  if (!follows_client(status->name)) return;
  // The client changed it (SET, RESET, set_config, a transaction's end undoing a SET LOCAL):
  // from now on it is the client's, in the server's spelling, applied wherever it goes next.
  adopt_setting(lower_setting_name(status->name), std::string(status->value));
}

void ClientSession::adopt_setting(std::string name, std::string value) {
  if (const auto found = settings_->find(name);
      found != settings_->end() && found->second == value) {
    return;
  }
  // The connection carries exactly the client's settings now.
  SettingMap updated = *settings_;
  updated[std::move(name)] = std::move(value);
  set_settings(intern_settings(*route_, std::move(updated)));
  // (Unless a reset left it unknown: the next lease then applies everything.)
  relay::server_side(*server_).applied_settings = settings_;
}

void ClientSession::look_for_session_state(const relay::MessageHeader& header,
                                           std::span<const char> whole) {
  const auto body = relay::body_of(whole);
  if (body.empty()) {
    // A Query too large to be shown whole cannot be read: it may leave anything behind.
    if (header.type == 'Q') pin(relay::PinCause::unclassified);
    return;
  }
  std::string_view sql;
  relay::SessionState state;
  if (header.type == 'Q') {
    sql = std::string_view(body.data(), body.size() - 1);
    state = relay::scan_session_state(sql);
  } else if (const auto parse = wire::parse_parse(body)) {
    // Without pool.max_prepared_statements, a named statement stays on its server connection.
    if (!parse->statement.empty() && !statements_) return pin(relay::PinCause::prepared_statement);
    sql = parse->query;
    // A Parse's text comes again and again (its values come apart, in Bind): the worker keeps
    // the answers for the texts it saw last.
    thread_local relay::SessionStateCache parse_texts;
    state = parse_texts.scan(sql);
  }
  if (state.resets_settings) {
    relay::server_side(*server_).settings_unknown = true;
    // A lone RESET says what it puts back; any other is read back at the transaction's end.
    if (const auto target = relay::reset_target(sql)) {
      forget_set_settings(*target);
    } else {
      settings_changed_ = true;
    }
  }
  // A lone SET outside a transaction, with nothing else in flight: followed like a reported
  // setting once the server says SET. Anything less plain is read back at the transaction's
  // end (or pins, for a custom setting).
  // (The tracker has counted this Query already.)
  const int in_flight = tracker_.pending_ready() - (header.type == 'Q' ? 1 : 0);
  if (!occasional(&Occasional::pending_set) && tracker_.status() == 'I' && in_flight == 0) {
    if (auto set = relay::plain_set(sql)) {
      occasional().pending_set = std::make_unique<relay::PlainSet>(std::move(*set));
      return;
    }
  }
  if (state.pin) return pin(*state.pin);
  if (state.changes_settings) settings_changed_ = true;
}

void ClientSession::forget_set_settings(const std::string& name) {
  // Settings the client SET in SQL go; those it asked for at startup stay (a direct server
  // resets to them), and the server reports what happened to the reported ones.
  SettingMap kept = *settings_;
  std::erase_if(kept, [&](const auto& setting) {
    return (name.empty() || setting.first == name) && !setting.second.empty() &&
           setting.second.front() == kSqlValueMark;
  });
  if (kept.size() != settings_->size()) set_settings(intern_settings(*route_, std::move(kept)));
}

void ClientSession::set_settings(std::shared_ptr<const SettingMap> next) {
  // Interned: equal maps are one pointer. Most sessions never change their settings in SQL and
  // hold no second pointer; one that returns to its startup settings drops it again.
  if (next == settings_) return;
  auto* kept = occasional_ ? &occasional_->startup_settings : nullptr;
  if (kept != nullptr && *kept == next) {
    kept->reset();
  } else if (kept == nullptr || !*kept) {
    occasional().startup_settings = settings_;
  }
  settings_ = std::move(next);
}

const SettingMap& ClientSession::startup_settings() const {
  const auto* kept = occasional_ ? occasional_->startup_settings.get() : nullptr;
  return kept != nullptr ? *kept : *settings_;
}

void ClientSession::pin(relay::PinCause cause) {
  pin_ = cause;
  if (route_->metrics) route_->metrics->client_pinned(relay::to_string(cause), +1);
  spdlog::debug("client session for {}: pinned to its server connection ({})",
                route_->settings.database, relay::to_string(cause));
}

}  // namespace pgvigil::proxy
