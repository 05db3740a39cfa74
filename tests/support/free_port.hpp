#pragma once
// Picks a TCP port nobody listens on, for servers a test starts (PostgreSQL, pgvigil's listeners).

#include <cstdint>

namespace pgvigil::testing {

// A port on 127.0.0.1 that the kernel just handed out for an ephemeral bind and that is free
// again on return. Another process may take it before the caller binds it; the window is small
// because the kernel cycles through the ephemeral range. Throws std::system_error on failure.
std::uint16_t free_tcp_port();

}  // namespace pgvigil::testing
