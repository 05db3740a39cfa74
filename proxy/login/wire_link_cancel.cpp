// WireLink's cancel: a CancelRequest on a connection of its own, as libpq's PQcancel sends it
// (in the clear: the server reads it before any TLS, and it carries only the backend's key).
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "proxy/login/wire_link.hpp"
#include "proxy/wire/frontend_messages.hpp"

namespace pgvigil::proxy::login {
namespace {

// A bound for each step, so a cancel to a black-holed server frees its thread.
constexpr int kStepTimeoutMs = 5000;

bool wait_for(int fd, short events) {
  pollfd watched{fd, events, 0};
  return ::poll(&watched, 1, kStepTimeoutMs) == 1;
}

bool send_cancel(const LoginTarget& target, std::uint32_t pid, std::uint32_t key,
                 std::string& error) {
  const auto address = target.socket_address(error);
  if (!address) return false;
  const int fd =
      ::socket(address->protocol().family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = std::string("could not create socket: ") + std::strerror(errno);
    return false;
  }
  std::string request;
  wire::append_cancel_request(request, pid, key);
  bool sent = false;
  if (::connect(fd, address->data(), address->size()) == 0 || errno == EINPROGRESS) {
    int failure = 0;
    socklen_t size = sizeof failure;
    sent = wait_for(fd, POLLOUT) && ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &failure, &size) == 0 &&
           failure == 0 &&
           ::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
               static_cast<ssize_t>(request.size());
  }
  if (!sent) {
    error = "could not send the cancel request to " + target.describe();
  } else if (wait_for(fd, POLLIN)) {
    // The server closes once it has read the request; waiting for that keeps the order of a
    // cancel and the next statement on the connection, as PQcancel does.
    char ignored = 0;
    (void)::recv(fd, &ignored, 1, 0);
  }
  ::close(fd);
  return sent;
}

}  // namespace

pool::CancelOrder WireLink::cancel_order() const {
  if (stage_ != Stage::ready) return {};
  return [target = target_, key = key_](std::string& error) {
    return send_cancel(target, key.process_id, key.secret, error);
  };
}

}  // namespace pgvigil::proxy::login
