#include "proxy/relay/server_side.hpp"

namespace pgvigil::proxy::relay {
namespace {

const SettingMap kNone;

}  // namespace

ServerSide& server_side(pool::ServerConnection& connection) {
  // The relay is the only lease holder that keeps state, so a state there is a ServerSide.
  if (auto* state = static_cast<ServerSide*>(connection.lease_state())) return *state;
  auto fresh = std::make_unique<ServerSide>();
  auto& made = *fresh;
  connection.set_lease_state(std::move(fresh));
  return made;
}

const SettingMap& applied_settings(const pool::ServerConnection& connection) {
  const auto* state = static_cast<const ServerSide*>(connection.lease_state());
  return state && state->applied_settings ? *state->applied_settings : kNone;
}

bool carries(pool::ServerConnection& connection, const std::shared_ptr<const SettingMap>& wanted) {
  auto* state = static_cast<ServerSide*>(connection.lease_state());
  if (state && state->settings_unknown) return false;
  if (state && state->applied_settings == wanted) return true;
  if (applied_settings(connection) != *wanted) return false;
  server_side(connection).applied_settings = wanted;  // the same values: next time, one pointer
  return true;
}

std::string statements_to_carry(const pool::ServerConnection& connection,
                                const SettingMap& wanted) {
  const auto* state = static_cast<const ServerSide*>(connection.lease_state());
  if (state && state->settings_unknown) return "RESET ALL;" + settings_statements(wanted, kNone);
  return settings_statements(wanted, applied_settings(connection));
}

}  // namespace pgvigil::proxy::relay
