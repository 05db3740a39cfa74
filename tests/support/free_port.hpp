#pragma once
// Picks a TCP port nobody listens on, for servers a test starts (PostgreSQL, pgvigil's listeners).

#include <cstdint>

namespace pgvigil::testing {

// A port on 127.0.0.1 that was free a moment ago, picked at random below the kernel's ephemeral
// range, so that no outgoing connection can be given it as its local port before the caller
// binds it (the kernel's ephemeral choice when that range leaves no room below it). Another
// test process running at the same time never gets the same port (a claim file per port under
// the temporary directory, kept 10 minutes). Throws std::system_error on failure.
std::uint16_t free_tcp_port();

}  // namespace pgvigil::testing
