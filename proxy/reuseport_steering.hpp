#pragma once
// Steering a SO_REUSEPORT group: which of its listening sockets the kernel hands the next new
// connections to. A one-instruction classic BPF program ("the socket at index n") attached to
// any socket of the group applies to the whole group (SO_ATTACH_REUSEPORT_CBPF, Linux 4.5);
// indexes follow the order the sockets joined it. An index the group does not have makes the
// kernel fall back to its hash, so a stale program never loses a connection.

#include <cstddef>
#include <system_error>

namespace pgvigil::proxy {

// Sends new connections to the group's socket at `index`. Returns the error when the kernel
// refuses (the group then keeps its previous program, or its hash).
std::error_code steer_reuseport_group(int listening_fd, std::size_t index);

}  // namespace pgvigil::proxy
