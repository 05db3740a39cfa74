#include "tests/support/free_port.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <system_error>

namespace pgvigil::testing {
namespace {

// Binds 127.0.0.1:port (0: the kernel chooses) and returns the port bound, or 0 when it is taken.
std::uint16_t try_bind(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "free_tcp_port: socket");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(port);
  socklen_t length = sizeof(address);
  const bool bound = ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
                     ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0;
  const int error = errno;
  // Closed without listen(): no TIME_WAIT state, so the caller can bind it right away.
  ::close(fd);
  if (!bound && port == 0) {
    throw std::system_error(error, std::generic_category(), "free_tcp_port: bind/getsockname");
  }
  return bound ? ntohs(address.sin_port) : 0;
}

// Claims `port` for this test process among the test processes that run at once (ctest -j):
// a file per port handed out, made with O_EXCL. A bind test alone cannot stop two processes from
// picking the same free port a moment apart: a daemon's admin port, free at the pick, was once
// taken before the daemon bound it, most likely by another test process's pick. A claim older than
// kClaimLifetime is stale (its test is over) and is taken over.
bool claim(std::uint16_t port) {
  constexpr auto kClaimLifetime = std::chrono::minutes(10);
  static const std::filesystem::path directory = [] {
    auto path = std::filesystem::temp_directory_path() / "pgvigil-test-ports";
    std::error_code ignored;
    std::filesystem::create_directories(path, ignored);
    return path;
  }();
  const auto file = directory / std::to_string(port);
  const int fd = ::open(file.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
  if (fd >= 0) {
    ::close(fd);
    return true;
  }
  if (errno != EEXIST) return true;  // no claims possible here: the bind test alone decides
  std::error_code error;
  const auto written = std::filesystem::last_write_time(file, error);
  if (error || std::filesystem::file_time_type::clock::now() - written < kClaimLifetime) {
    return false;
  }
  // Stale: renew it. Two processes renewing the same stale claim at once is as rare as the
  // collision this prevents, and no worse.
  std::filesystem::last_write_time(file, std::filesystem::file_time_type::clock::now(), error);
  return !error;
}

// The lowest port the kernel hands out as the local port of an outgoing connection.
int ephemeral_range_start() {
  std::ifstream range("/proc/sys/net/ipv4/ip_local_port_range");
  int low = 0;
  return range >> low ? low : 0;
}

}  // namespace

std::uint16_t free_tcp_port() {
  // Below the ephemeral range: any outgoing connection on the machine (a test's clients, libpq,
  // pgvigil's own server links) may be given a port of that range as its local port, and a
  // listener can then not bind it. Under load, with hundreds of test connections, that
  // happened between this pick and the daemon's bind.
  constexpr int kLowest = 10000;
  const int ephemeral = ephemeral_range_start();
  if (ephemeral > kLowest + 1000) {
    std::mt19937 random(std::random_device{}() ^ static_cast<unsigned>(::getpid()));
    std::uniform_int_distribution<int> pick(kLowest, ephemeral - 1);
    for (int attempt = 0; attempt < 100; ++attempt) {
      const auto port = try_bind(static_cast<std::uint16_t>(pick(random)));
      if (port != 0 && claim(port)) return port;
    }
  }
  return try_bind(0);  // the kernel's choice, from the ephemeral range
}

}  // namespace pgvigil::testing
