#include "probes/tcp_info.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

namespace pgvigil::probes {

std::optional<TcpSnapshot> read_tcp_info(int fd) {
  tcp_info info{};
  socklen_t length = sizeof info;
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &length) != 0) return std::nullopt;
  TcpSnapshot snapshot;
  snapshot.established = info.tcpi_state == TCP_ESTABLISHED;
  snapshot.closed = info.tcpi_state == TCP_CLOSE;
  snapshot.rtt = std::chrono::microseconds(info.tcpi_rtt);
  snapshot.rtt_variance = std::chrono::microseconds(info.tcpi_rttvar);
  snapshot.unacked_segments = info.tcpi_unacked;
  snapshot.retransmits = info.tcpi_retransmits;
  snapshot.keepalive_probes = info.tcpi_probes;
  snapshot.since_last_data_received = std::chrono::milliseconds(info.tcpi_last_data_recv);
  snapshot.since_last_ack_received = std::chrono::milliseconds(info.tcpi_last_ack_recv);
  return snapshot;
}

int take_socket_error(int fd) {
  int error = 0;
  socklen_t length = sizeof error;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0) return 0;
  return error;
}

}  // namespace pgvigil::probes
