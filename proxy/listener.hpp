#pragma once
// Accepts clients on TCP (listen.address) and on a Unix socket (<unix_socket_dir>/.s.PGSQL.<port>,
// the name psql -h <dir> looks for) and hands each to a ClientSession, after the client limit.
//
// Every worker accepts TCP clients on a listening socket of its own (SO_REUSEPORT) and keeps each
// session it accepted: a session whose database has a shard on that worker never changes threads.
// Which socket the kernel hands a new connection to is steered by a one-instruction classic BPF
// program on the group (SO_ATTACH_REUSEPORT_CBPF: "the socket at index n"), rewritten only when
// the placement's target worker changes (worker_placement.hpp); with listen.pack_until_busy 0
// there is none and the kernel spreads connections by their hash. The Unix socket has one
// listening socket, on worker 0, which deals its clients to the target worker (or to each in
// turn, spreading). TCP clients usually come with their first bytes (listen.defer_accept), so
// the first read after the accept finds them.

#include <sys/socket.h>

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "proxy/proxy_service.hpp"
#include "proxy/worker_placement.hpp"

namespace pgvigil::proxy {

class Listener {
 public:
  // workers: the event loops sessions run on (at least one); the first also takes Unix clients.
  Listener(std::vector<boost::asio::io_context*> workers, ProxyService& service);
  ~Listener();

  // Binds and starts accepting. Throws std::system_error naming the address on failure.
  void start();
  // Stops accepting and removes the Unix socket file. Thread-safe: each listening socket is
  // closed on its own worker.
  void stop();
  std::uint16_t tcp_port() const { return tcp_port_; }
  // How busy each worker is and how many clients each took (the metrics read it). Thread-safe.
  const WorkerPlacement& placement() const { return placement_; }

 private:
  template <typename Acceptor>
  boost::asio::awaitable<void> accept_loop(std::size_t worker, Acceptor& acceptor, bool tcp);
  // Worker `worker` measures how busy it is, every WorkerPlacement::kSampleEvery; worker 0 then
  // moves the target when it must.
  boost::asio::awaitable<void> measure_loop(std::size_t worker);
  // New TCP connections go to worker `worker`'s listening socket (index `worker` of the reuseport
  // group: the sockets joined it in the workers' order). On worker 0.
  void steer_to(std::size_t worker);
  // Opens worker `index`'s TCP listening socket on `endpoint`.
  void listen_tcp(std::size_t index, const boost::asio::ip::tcp::endpoint& endpoint);
  // listen.defer_accept: the kernel hands a client over once its first bytes are in.
  void defer_accept(boost::asio::ip::tcp::acceptor& acceptor) const;
  // Where an accepted client's session runs: its own worker for TCP; for Unix, the target, or
  // the next in turn when spreading.
  std::size_t session_worker(std::size_t accepting, bool tcp);
  // Starts the client's session on `worker`, or refuses it (max_client_connections); `address`
  // is the peer's, as accept4 gave it.
  void admit(std::size_t worker, int fd, const sockaddr_storage& address);

  std::vector<boost::asio::io_context*> workers_;
  ProxyService& service_;
  std::vector<std::unique_ptr<boost::asio::ip::tcp::acceptor>> tcp_;  // one per worker
  std::optional<boost::asio::local::stream_protocol::acceptor> unix_;
  std::string unix_path_;
  std::uint16_t tcp_port_ = 0;
  std::size_t next_unix_worker_ = 0;  // only on worker 0
  WorkerPlacement placement_;
  std::atomic<bool> stopping_{false};
  bool steering_refused_ = false;  // on worker 0 (and at start, before the workers run)
};

}  // namespace pgvigil::proxy
