#pragma once
// Helpers shared by the daemon-level tests that drive pgvigil from the outside: its metrics page,
// a libpq client through its proxy, and a live server socket's keep-alive options read back.

#include <libpq-fe.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tests/support/admin_metrics.hpp"
#include "tests/support/free_port.hpp"
#include "tests/support/prometheus_text.hpp"

namespace pgvigil::testing {


// The two ports a daemon under test listens on, free when made.
struct DaemonPorts {
  std::uint16_t admin = free_tcp_port();
  std::uint16_t listen = free_tcp_port();
};

// A client connection through pgvigil's proxy.
struct PgConnDeleter {
  void operator()(PGconn* conn) const { PQfinish(conn); }
};
using Client = std::unique_ptr<PGconn, PgConnDeleter>;
Client connect_client(std::uint16_t listen_port, const std::string& database);
// Runs sql; "" on success, else the error message.
std::string run(PGconn* conn, const std::string& sql);

// The keep-alive options and TCP_NODELAY of one socket of another process, read with getsockopt
// on a duplicate taken with pidfd_getfd (root only): the real socket, not a log line.
struct TcpSocketOptions {
  unsigned long long inode = 0;
  int idle_s = 0;
  int interval_s = 0;
  int count = 0;
  int user_timeout_ms = 0;
  int no_delay = 0;
};
// Every TCP socket of pid connected to 127.0.0.1:peer_port: a server's port for pgvigil's server
// connections, a client's own port for the socket pgvigil accepted from it.
std::vector<TcpSocketOptions> sockets_connected_to(pid_t pid, std::uint16_t peer_port);

}  // namespace pgvigil::testing
