#pragma once
// Setting and reading back the keep-alive options of one TCP socket.

#include <optional>
#include <string>
#include <system_error>

#include "probes/keepalive_settings.hpp"

namespace pgvigil::probes {

// Applies SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT and TCP_USER_TIMEOUT to fd.
std::error_code apply_keepalive(int fd, const KeepaliveSettings& settings);

// Reads the options back with getsockopt. nullopt if keep-alive is off or a read fails.
std::optional<KeepaliveSettings> read_keepalive(int fd);

// Empty when the socket carries `expected`; otherwise a one-line description of every difference.
std::string describe_keepalive_mismatch(int fd, const KeepaliveSettings& expected);

}  // namespace pgvigil::probes
