#pragma once
// What the relay has set up on one server connection, kept with the connection between leases
// (pool::LeaseState), so that the next client's lease knows what to change: the client settings
// applied there, and the statements prepared there under pgvigil's names.

#include <memory>

#include "pool/server_connection.hpp"
#include "proxy/client_settings.hpp"
#include "proxy/relay/prepared_statements.hpp"

namespace pgvigil::proxy::relay {

struct ServerSide final : pool::LeaseState {
  // The settings applied for clients (SET name TO value). Shared and immutable: clients with the
  // same settings share one copy, so the check on every lease is usually a pointer comparison.
  // Null when none are: a new connection, or after a reset that discards them.
  std::shared_ptr<const SettingMap> applied_settings;
  // A client reset settings (RESET, DISCARD ALL): what the connection carries is not known,
  // so the next lease starts from RESET ALL and applies everything it wants.
  bool settings_unknown = false;
  // Named statements of clients in transaction pooling (statement_relay.hpp).
  ServerStatements statements;
};

// The connection's relay state, made on first use. On the connection's executor only.
ServerSide& server_side(pool::ServerConnection& connection);

// The settings the connection carries (empty when none were applied).
const SettingMap& applied_settings(const pool::ServerConnection& connection);

// True when the connection carries exactly `wanted` (and then it keeps `wanted`'s pointer, so the
// next comparison is a pointer comparison).
bool carries(pool::ServerConnection& connection, const std::shared_ptr<const SettingMap>& wanted);
// The statements that make the connection carry `wanted`; empty when it does.
std::string statements_to_carry(const pool::ServerConnection& connection, const SettingMap& wanted);

}  // namespace pgvigil::proxy::relay
