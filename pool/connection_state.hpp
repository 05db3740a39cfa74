#pragma once
// The one explicit state of a server connection; each state names the list it sits on in its pool.

#include <array>
#include <string_view>

namespace pgvigil::pool {

enum class ConnectionState {
  connecting,   // resolving, connecting, authenticating
  idle,         // in the pool, watched for readability, pinged when quiet
  probing,      // in the pool, an application ping is in flight
  checked_out,  // lent to a client; the pool does not touch its socket
  closing,      // evicted; being closed
};

inline constexpr std::array kAllConnectionStates = {
    ConnectionState::connecting, ConnectionState::idle, ConnectionState::probing,
    ConnectionState::checked_out, ConnectionState::closing};

constexpr std::string_view to_string(ConnectionState state) {
  switch (state) {
    case ConnectionState::connecting: return "connecting";
    case ConnectionState::idle: return "idle";
    case ConnectionState::probing: return "probing";
    case ConnectionState::checked_out: return "checked_out";
    case ConnectionState::closing: return "closing";
  }
  return "unknown";
}

}  // namespace pgvigil::pool
