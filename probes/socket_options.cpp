#include "probes/socket_options.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <sstream>

namespace pgvigil::probes {
namespace {

std::error_code set_int(int fd, int level, int name, int value) {
  if (setsockopt(fd, level, name, &value, sizeof value) != 0) {
    return {errno, std::system_category()};
  }
  return {};
}

std::optional<int> get_int(int fd, int level, int name) {
  int value = 0;
  socklen_t length = sizeof value;
  if (getsockopt(fd, level, name, &value, &length) != 0) return std::nullopt;
  return value;
}

}  // namespace

std::error_code apply_keepalive(int fd, const KeepaliveSettings& settings) {
  if (auto ec = set_int(fd, SOL_SOCKET, SO_KEEPALIVE, 1)) return ec;
  if (auto ec = set_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, static_cast<int>(settings.idle.count())))
    return ec;
  if (auto ec =
          set_int(fd, IPPROTO_TCP, TCP_KEEPINTVL, static_cast<int>(settings.interval.count())))
    return ec;
  if (auto ec = set_int(fd, IPPROTO_TCP, TCP_KEEPCNT, settings.count)) return ec;
  return set_int(fd, IPPROTO_TCP, TCP_USER_TIMEOUT,
                 static_cast<int>(settings.user_timeout.count()));
}

std::optional<KeepaliveSettings> read_keepalive(int fd) {
  auto enabled = get_int(fd, SOL_SOCKET, SO_KEEPALIVE);
  auto idle = get_int(fd, IPPROTO_TCP, TCP_KEEPIDLE);
  auto interval = get_int(fd, IPPROTO_TCP, TCP_KEEPINTVL);
  auto count = get_int(fd, IPPROTO_TCP, TCP_KEEPCNT);
  auto user_timeout = get_int(fd, IPPROTO_TCP, TCP_USER_TIMEOUT);
  if (!enabled || *enabled == 0 || !idle || !interval || !count || !user_timeout) {
    return std::nullopt;
  }
  return KeepaliveSettings{std::chrono::seconds(*idle), std::chrono::seconds(*interval), *count,
                           std::chrono::milliseconds(*user_timeout)};
}

std::string describe_keepalive_mismatch(int fd, const KeepaliveSettings& expected) {
  auto actual = read_keepalive(fd);
  if (!actual) return "keep-alive is off or unreadable on the socket";
  if (*actual == expected) return {};
  std::ostringstream out;
  auto compare = [&out](const char* name, auto want, auto got) {
    if (want != got) out << name << " is " << got << " (want " << want << ") ";
  };
  compare("TCP_KEEPIDLE", expected.idle.count(), actual->idle.count());
  compare("TCP_KEEPINTVL", expected.interval.count(), actual->interval.count());
  compare("TCP_KEEPCNT", expected.count, actual->count);
  compare("TCP_USER_TIMEOUT", expected.user_timeout.count(), actual->user_timeout.count());
  auto text = out.str();
  if (!text.empty()) text.pop_back();
  return text;
}

}  // namespace pgvigil::probes
