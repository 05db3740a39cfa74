#pragma once
// A snapshot of the kernel's view of one TCP connection (TCP_INFO).

#include <chrono>
#include <cstdint>
#include <optional>

namespace pgvigil::probes {

struct TcpSnapshot {
  bool established = false;                  // tcpi_state == TCP_ESTABLISHED
  bool closed = false;                       // tcpi_state == TCP_CLOSE: the kernel tore it down
  std::chrono::microseconds rtt{0};          // smoothed round-trip time
  std::chrono::microseconds rtt_variance{0};
  std::uint32_t unacked_segments = 0;        // data sent and not yet acknowledged
  // After a teardown these two say which timer ended the connection (measured on Linux 6.18):
  // keep-alive leaves probes > 0 and retransmits == 0; TCP_USER_TIMEOUT (or retransmission)
  // leaves retransmits > 0 and probes == 0, since keep-alive sends no probes while data is
  // unacknowledged. (tcpi_unacked and tcpi_backoff are zeroed by the teardown.)
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
