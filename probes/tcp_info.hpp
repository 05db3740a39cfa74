#pragma once
// A snapshot of the kernel's view of one TCP connection (TCP_INFO).

#include <chrono>
#include <cstdint>
#include <optional>

namespace pgvigil::probes {

struct TcpSnapshot {
  bool established = false;                  // tcpi_state == TCP_ESTABLISHED
  std::chrono::microseconds rtt{0};          // smoothed round-trip time
  std::chrono::microseconds rtt_variance{0};
  std::uint32_t unacked_segments = 0;        // data sent and not yet acknowledged
  std::uint32_t retransmits = 0;             // consecutive retransmissions of the oldest segment
  std::uint32_t keepalive_probes = 0;        // unanswered keep-alive probes so far
  std::chrono::milliseconds since_last_data_received{0};
  std::chrono::milliseconds since_last_ack_received{0};
};

// nullopt when fd is not a TCP socket (a Unix socket) or getsockopt fails.
std::optional<TcpSnapshot> read_tcp_info(int fd);

// The socket's pending error (SO_ERROR), which reading clears. 0 when none.
int take_socket_error(int fd);

}  // namespace pgvigil::probes
