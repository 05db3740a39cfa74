#include "proxy/listener.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <system_error>

#include "proxy/client_error.hpp"
#include "proxy/client_session.hpp"
#include "proxy/reuseport_steering.hpp"

namespace pgvigil::proxy {
namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

std::system_error cannot_listen(int error, const std::string& where) {
  return std::system_error(error, std::generic_category(), "cannot listen for clients on " + where);
}

// SO_REUSEPORT lets a second process of the same user join the port silently. A first bind
// without it tells that the port is taken, as a plain listener would.
void check_port_free(asio::io_context& context, const tcp::endpoint& endpoint,
                     const std::string& where) {
  tcp::acceptor probe(context);
  boost::system::error_code ec;
  probe.open(endpoint.protocol(), ec);
  if (!ec) probe.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) probe.bind(endpoint, ec);
  if (ec) throw cannot_listen(ec.value(), where);
}

// Clients accepted before the worker runs anything else.
constexpr int kAcceptsInARow = 8;

// A descriptor shortage: accepting again at once would spin on the same readiness.
bool out_of_descriptors(int error) {
  return error == EMFILE || error == ENFILE || error == ENOBUFS || error == ENOMEM;
}

}  // namespace

Listener::Listener(std::vector<asio::io_context*> workers, ProxyService& service)
    : workers_(std::move(workers)),
      service_(service),
      placement_(workers_.size(), service.settings().pack_until_busy) {
  std::vector<stream::Executor> executors;
  for (auto* worker : workers_) executors.push_back(worker->get_executor());
  service_.set_workers(std::move(executors), &placement_);
}

Listener::~Listener() {
  if (!unix_path_.empty()) ::unlink(unix_path_.c_str());
}

void Listener::defer_accept(tcp::acceptor& acceptor) const {
  // Whole seconds, as the kernel counts them (it rounds up to its SYN-ACK retransmissions).
  const int seconds = static_cast<int>(service_.settings().defer_accept.count());
  if (seconds <= 0) return;
  if (::setsockopt(acceptor.native_handle(), IPPROTO_TCP, TCP_DEFER_ACCEPT, &seconds,
                   sizeof seconds) != 0) {
    // Only slower: each client is then accepted before it has spoken.
    spdlog::warn("listen.defer_accept: TCP_DEFER_ACCEPT refused: {}",
                 std::generic_category().message(errno));
  }
}

void Listener::listen_tcp(std::size_t index, const tcp::endpoint& endpoint) {
  auto acceptor = std::make_unique<tcp::acceptor>(*workers_[index]);
  acceptor->open(endpoint.protocol());
  acceptor->set_option(asio::socket_base::reuse_address(true));
  const int on = 1;
  if (::setsockopt(acceptor->native_handle(), SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0) {
    throw boost::system::system_error(errno, boost::system::generic_category());
  }
  defer_accept(*acceptor);
  // Set once here rather than on each client: Linux clones an accepted socket from its listener,
  // TCP_NODELAY included (a system call less per new connection).
  acceptor->set_option(tcp::no_delay(true));
  acceptor->bind(endpoint);
  acceptor->listen(asio::socket_base::max_listen_connections);
  acceptor->non_blocking(true);  // accept4 below must never block the worker
  tcp_.push_back(std::move(acceptor));
}

void Listener::start() {
  const auto& listen = service_.settings().listen;
  if (!listen.host.empty()) {
    std::string host = listen.host;
    if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
    tcp::endpoint endpoint(asio::ip::make_address(host), listen.port);
    const auto where = listen.host + ":" + std::to_string(listen.port);
    if (listen.port != 0) check_port_free(*workers_.front(), endpoint, where);
    try {
      for (std::size_t index = 0; index < workers_.size(); ++index) {
        listen_tcp(index, endpoint);
        // Port 0: the others join the port the kernel picked for the first.
        endpoint.port(tcp_.front()->local_endpoint().port());
      }
    } catch (const boost::system::system_error& error) {
      throw cannot_listen(error.code().value(), where);
    }
    tcp_port_ = endpoint.port();
    if (placement_.packs()) steer_to(placement_.target());
    for (std::size_t index = 0; index < tcp_.size(); ++index) {
      asio::co_spawn(*workers_[index], accept_loop(index, *tcp_[index], true), asio::detached);
    }
  }
  if (!listen.unix_socket_dir.empty()) {
    unix_path_ = listen.unix_socket_dir + "/.s.PGSQL." + std::to_string(listen.port);
    // A socket file left by a crashed run would make bind fail; nobody listens on it any more
    // (connect would tell), and the directory is ours.
    ::unlink(unix_path_.c_str());
    try {
      unix_.emplace(*workers_.front(), asio::local::stream_protocol::endpoint(unix_path_));
      unix_->non_blocking(true);
    } catch (const boost::system::system_error& error) {
      throw cannot_listen(error.code().value(), unix_path_);
    }
    ::chmod(unix_path_.c_str(), 0777);  // like PostgreSQL's unix_socket_permissions default
    asio::co_spawn(*workers_.front(), accept_loop(0, *unix_, false), asio::detached);
  }
  if (placement_.packs()) {
    for (std::size_t index = 0; index < workers_.size(); ++index) {
      asio::co_spawn(*workers_[index], measure_loop(index), asio::detached);
    }
  }
}

void Listener::stop() {
  stopping_ = true;
  for (auto& acceptor : tcp_) {
    asio::post(acceptor->get_executor(), [&acceptor = *acceptor] {
      boost::system::error_code ignored;
      acceptor.close(ignored);
    });
  }
  if (unix_) {
    asio::post(unix_->get_executor(), [&acceptor = *unix_] {
      boost::system::error_code ignored;
      acceptor.close(ignored);
    });
  }
  if (!unix_path_.empty()) ::unlink(unix_path_.c_str());
  unix_path_.clear();
}

template <typename Acceptor>
asio::awaitable<void> Listener::accept_loop(std::size_t index, Acceptor& acceptor, bool tcp) {
  auto& worker = *workers_[index];
  while (acceptor.is_open()) {
    // Waits for readiness and accepts with accept4 itself: the socket comes non-blocking and
    // unregistered, where Asio's accept registers it with this loop, which the session's own
    // stream would undo and redo.
    auto [ec] =
        co_await acceptor.async_wait(Acceptor::wait_read, asio::as_tuple(asio::use_awaitable));
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
    int in_a_row = 0;
    while (true) {
      // The peer's address comes with the accept: no getpeername later.
      sockaddr_storage peer{};
      socklen_t peer_length = sizeof peer;
      const int fd = ::accept4(acceptor.native_handle(), reinterpret_cast<sockaddr*>(&peer),
                               &peer_length, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd >= 0) {
        admit(session_worker(index, tcp), fd, peer);
        // A burst (thousands of clients at once) is taken a few at a time, the startups of
        // those taken running in between: draining the whole backlog first would fill the
        // startup gate with clients not yet read, pushing out the oldest.
        if (++in_a_row % kAcceptsInARow == 0) {
          auto others = asio::post(worker, asio::use_awaitable);
          co_await std::move(others);
          if (!acceptor.is_open()) co_return;
        }
        continue;
      }
      const int error = errno;
      if (error == EAGAIN || error == EWOULDBLOCK) break;
      if (error == EINTR || error == ECONNABORTED || error == EPROTO) continue;
      // EMFILE and friends: log and keep serving those already connected; try again shortly.
      spdlog::warn("accepting a client failed: {}", std::generic_category().message(error));
      if (!out_of_descriptors(error)) break;
      // The backlog is still full: accepting resumes after the pause, not at the next
      // readiness, which an edge-triggered loop would not report again.
      asio::steady_timer pause(worker, std::chrono::milliseconds(100));
      co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
      if (!acceptor.is_open()) co_return;
    }
  }
}

asio::awaitable<void> Listener::measure_loop(std::size_t index) {
  asio::steady_timer tick(*workers_[index]);
  placement_.sample(index);
  while (!stopping_) {
    tick.expires_after(WorkerPlacement::kSampleEvery);
    auto [ec] = co_await tick.async_wait(asio::as_tuple(asio::use_awaitable));
    if (ec || stopping_) co_return;
    placement_.sample(index);
    if (index == 0 && placement_.retarget()) steer_to(placement_.target());
  }
}

void Listener::steer_to(std::size_t worker) {
  if (tcp_.empty() || !tcp_.front()->is_open() || steering_refused_) return;
  if (const auto error = steer_reuseport_group(tcp_.front()->native_handle(), worker)) {
    // Only less packed: the kernel keeps spreading TCP clients by hash. Said once, not at every
    // move of the target.
    steering_refused_ = true;
    spdlog::warn(
        "listen.pack_until_busy: SO_ATTACH_REUSEPORT_CBPF refused ({}): TCP clients are "
        "spread over the workers by the kernel's hash",
        error.message());
  }
}

std::size_t Listener::session_worker(std::size_t accepting, bool tcp) {
  if (tcp) return accepting;
  if (placement_.packs()) return placement_.target();
  return next_unix_worker_++ % workers_.size();
}

void Listener::admit(std::size_t index, int fd, const sockaddr_storage& address) {
  placement_.count_accepted(index);
  auto& worker = *workers_[index];
  if (!service_.room_for_client()) {
    // The refusal is tiny: a best-effort non-blocking send, then close.
    const auto refusal =
        fatal_error_bytes({sqlstate::kTooManyConnections,
                           "too many client connections: listen.max_client_connections is " +
                               std::to_string(service_.settings().max_client_connections),
                           "", ""});
    [[maybe_unused]] auto sent =
        ::send(fd, refusal.data(), refusal.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    // The client's first message is in already (listen.defer_accept): closed unread, Linux would
    // answer with a reset, and some client stacks drop the refusal they have not read yet. A
    // startup packet is small; a client that keeps sending gets its reset after 8 KiB.
    char unread[1024];
    for (int reads = 0; reads < 8 && ::recv(fd, unread, sizeof unread, MSG_DONTWAIT) > 0; ++reads) {
    }
    ::close(fd);
    service_.count_startup_error(sqlstate::kTooManyConnections);
    return;
  }
  if (worker.get_executor().running_in_this_thread()) {
    ClientSession::start(service_, worker.get_executor(), fd, address);
    return;
  }
  asio::post(worker, [&service = service_, &worker, fd, address] {
    ClientSession::start(service, worker.get_executor(), fd, address);
  });
}

}  // namespace pgvigil::proxy
