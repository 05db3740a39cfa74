#pragma once
// Picks a TCP port nobody listens on, for servers a test starts (PostgreSQL, pgvigil's listeners).

#include <cstdint>

namespace pgvigil::testing {

// A port on 127.0.0.1 that was free a moment ago, picked at random below the kernel's ephemeral
// range, so that no outgoing connection can be given it as its local port before the caller
// binds it (the kernel's ephemeral choice when that range leaves no room below it). Another
// test may still pick the same port; among some 20,000 that is rare. Throws std::system_error
// on failure.
std::uint16_t free_tcp_port();

}  // namespace pgvigil::testing
