#include "tests/daemon/daemon_test_util.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <filesystem>


namespace pgvigil::testing {

Client connect_client(std::uint16_t listen_port, const std::string& database) {
  const std::string conninfo = "host=127.0.0.1 port=" + std::to_string(listen_port) +
                               " dbname=" + database + " user=postgres connect_timeout=5";
  return Client(PQconnectdb(conninfo.c_str()));
}

std::string run(PGconn* conn, const std::string& sql) {
  PGresult* result = PQexec(conn, sql.c_str());
  const auto status = PQresultStatus(result);
  std::string error;
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    error = PQerrorMessage(conn);
    if (error.empty()) error = "failed";
  }
  PQclear(result);
  return error;
}

std::vector<TcpSocketOptions> sockets_connected_to(pid_t pid, std::uint16_t peer_port) {
  std::vector<TcpSocketOptions> sockets;
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) return sockets;
  std::error_code ignored;
  for (const auto& entry :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ignored)) {
    const int target = std::atoi(entry.path().filename().c_str());
    const int fd = static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd, target, 0));
    if (fd < 0) continue;
    sockaddr_in peer{};
    socklen_t length = sizeof peer;
    struct stat info {};
    int type = 0;
    socklen_t type_length = sizeof type;
    if (::fstat(fd, &info) == 0 && S_ISSOCK(info.st_mode) &&
        ::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &type_length) == 0 && type == SOCK_STREAM &&
        ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &length) == 0 &&
        peer.sin_family == AF_INET && ntohs(peer.sin_port) == peer_port) {
      TcpSocketOptions found;
      found.inode = info.st_ino;
      socklen_t size = sizeof(int);
      ::getsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &found.idle_s, &size);
      size = sizeof(int);
      ::getsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &found.interval_s, &size);
      size = sizeof(int);
      ::getsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &found.count, &size);
      size = sizeof(int);
      ::getsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &found.user_timeout_ms, &size);
      size = sizeof(int);
      ::getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &found.no_delay, &size);
      sockets.push_back(found);
    }
    ::close(fd);
  }
  ::close(pidfd);
  return sockets;
}

}  // namespace pgvigil::testing
