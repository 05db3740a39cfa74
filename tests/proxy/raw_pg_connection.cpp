#include "tests/proxy/raw_pg_connection.hpp"

#include <arpa/inet.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>
#include <utility>

namespace pgvigil::testing {

using Clock = std::chrono::steady_clock;

std::string be32(std::uint32_t value) {
  std::string bytes(4, '\0');
  bytes[0] = static_cast<char>((value >> 24) & 0xff);
  bytes[1] = static_cast<char>((value >> 16) & 0xff);
  bytes[2] = static_cast<char>((value >> 8) & 0xff);
  bytes[3] = static_cast<char>(value & 0xff);
  return bytes;
}

std::string startup_packet(const std::map<std::string, std::string>& parameters,
                           std::uint32_t code) {
  std::string body = be32(code);
  for (const auto& [name, value] : parameters) {
    body += name;
    body.push_back('\0');
    body += value;
    body.push_back('\0');
  }
  body.push_back('\0');
  return be32(static_cast<std::uint32_t>(body.size() + 4)) + body;
}

std::string typed_message(char type, std::string_view payload) {
  return std::string(1, type) + be32(static_cast<std::uint32_t>(payload.size() + 4)) +
         std::string(payload);
}

std::map<char, std::string> error_fields(std::string_view payload) {
  std::map<char, std::string> fields;
  std::size_t at = 0;
  while (at < payload.size() && payload[at] != '\0') {
    const char code = payload[at++];
    const std::size_t end = payload.find('\0', at);
    if (end == std::string_view::npos) return {};
    fields[code] = std::string(payload.substr(at, end - at));
    at = end + 1;
  }
  if (at >= payload.size()) return {};  // the terminating zero byte is missing
  return fields;
}

RawPgConnection::RawPgConnection(std::uint16_t port, int receive_buffer) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "socket");
  if (receive_buffer > 0) {
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
  }
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    const int error = errno;
    ::close(fd_);
    throw std::system_error(error, std::generic_category(), "connect to pgvigil");
  }
}

RawPgConnection::~RawPgConnection() {
  if (fd_ >= 0) ::close(fd_);
}

bool RawPgConnection::send(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

void RawPgConnection::finish_sending() { ::shutdown(fd_, SHUT_WR); }

bool RawPgConnection::send_then_finish(std::string_view bytes) {
  const int on = 1;
  if (::setsockopt(fd_, IPPROTO_TCP, TCP_CORK, &on, sizeof on) != 0) {
    throw std::system_error(errno, std::generic_category(), "setsockopt(TCP_CORK)");
  }
  const bool sent = send(bytes);
  finish_sending();
  return sent;
}

bool RawPgConnection::fill(Clock::time_point deadline) {
  if (closed_) return false;
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() < 0) return false;
    pollfd watched{fd_, POLLIN, 0};
    const int ready = ::poll(&watched, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return false;
    char chunk[65536];
    const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {  // EOF, or ECONNRESET from a server that closed with our bytes unread
      closed_ = true;
      reset_ = n < 0 && errno == ECONNRESET;
      return false;
    }
    unread_.append(chunk, static_cast<std::size_t>(n));
    return true;
  }
}

std::string RawPgConnection::read_first_arrival(std::chrono::milliseconds timeout) {
  if (unread_.empty()) fill(Clock::now() + timeout);
  return std::exchange(unread_, std::string());
}

RawPgConnection::ReadEnd RawPgConnection::read_byte(char& byte, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (unread_.empty()) {
    if (!fill(deadline)) return closed_ ? ReadEnd::closed : ReadEnd::timeout;
  }
  byte = unread_[0];
  unread_.erase(0, 1);
  return ReadEnd::message;
}

RawPgConnection::ReadEnd RawPgConnection::read_message(BackendMessage& message,
                                                       std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    if (unread_.size() >= 5) {
      const auto* p = reinterpret_cast<const unsigned char*>(unread_.data() + 1);
      const std::uint32_t length = (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) |
                                   (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]};
      if (length >= 4 && unread_.size() >= std::size_t{1} + length) {
        message.type = unread_[0];
        message.payload = unread_.substr(5, length - 4);
        unread_.erase(0, std::size_t{1} + length);
        return ReadEnd::message;
      }
    }
    if (!fill(deadline)) return closed_ ? ReadEnd::closed : ReadEnd::timeout;
  }
}

std::optional<BackendMessage> RawPgConnection::read_until(char type,
                                                          std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    BackendMessage message;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (read_message(message, std::max(left, std::chrono::milliseconds(0))) != ReadEnd::message) {
      return std::nullopt;
    }
    if (message.type == type) return message;
  }
}

bool RawPgConnection::closed_by_server_within(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  if (!unread_.empty()) return false;
  while (true) {
    if (fill(deadline)) return false;  // data, not a close
    return closed_;
  }
}

bool RawPgConnection::login(const std::string& user, const std::string& database,
                            std::chrono::milliseconds timeout, std::string* failure) {
  const auto deadline = Clock::now() + timeout;
  if (!send(startup_packet({{"user", user}, {"database", database}}))) {
    if (failure) *failure = "send failed";
    return false;
  }
  while (true) {
    BackendMessage message;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    const auto end = read_message(message, std::max(left, std::chrono::milliseconds(0)));
    if (end != ReadEnd::message) {
      if (failure) *failure = end == ReadEnd::closed ? "closed before ReadyForQuery" : "timeout";
      return false;
    }
    if (message.type == 'Z') return true;
    if (message.type == 'E') {
      if (failure) {
        auto fields = error_fields(message.payload);
        *failure = "ErrorResponse " + fields['C'] + ": " + fields['M'];
      }
      return false;
    }
    if (message.type == 'R' && message.payload.size() >= 4 &&
        message.payload.substr(0, 4) != std::string("\0\0\0\0", 4)) {
      if (failure) *failure = "server asked for a password (not trust)";
      return false;
    }
  }
}

int RawPgConnection::unread_in_kernel() const {
  int bytes = 0;
  return ::ioctl(fd_, SIOCINQ, &bytes) == 0 ? bytes : -1;
}

int RawPgConnection::unacknowledged_sent() const {
  int bytes = 0;
  return ::ioctl(fd_, SIOCOUTQ, &bytes) == 0 ? bytes : -1;
}

}  // namespace pgvigil::testing
