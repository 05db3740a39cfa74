#pragma once
// Parks the sessions of one worker that stopped relaying, and times the waits of the others
// (client_session_bounds.cpp); every kParkedCheckPeriod it also times how long parked sessions
// have been idle (pool.client_idle_timeout).
//
// A session that finished a transaction keeps its client buffer and a pending read for a
// moment (it lingers): most clients send their next query within microseconds, and parking
// (a buffer-less readability wait) costs an epoll re-arm per transaction. Every kSweepPeriod
// this sweep parks the lingering sessions that were quiet for a whole period, so a quiet client
// holds no buffer after at most two periods. One per io_context (an Asio service), so it dies
// with its worker's event loop.

#include <boost/asio/execution_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <memory>
#include <vector>

namespace pgvigil::proxy {

class ClientSession;

class LingerSweep : public boost::asio::execution_context::service {
 public:
  static inline boost::asio::execution_context::id id;
  static constexpr auto kSweepPeriod = std::chrono::milliseconds(10);
  static constexpr auto kParkedCheckPeriod = std::chrono::milliseconds(100);

  explicit LingerSweep(boost::asio::execution_context& context);

  // Watches `session` until it parks or ends. On the session's worker.
  static void add(const std::shared_ptr<ClientSession>& session);
  // Times a parked session's idleness until it wakes or ends. On the session's worker.
  static void add_parked(const std::shared_ptr<ClientSession>& session);

 private:
  void shutdown() override;
  void arm();
  void sweep();

  static LingerSweep& of(const std::shared_ptr<ClientSession>& session);

  std::vector<std::weak_ptr<ClientSession>> sessions_;
  std::vector<std::weak_ptr<ClientSession>> parked_;
  std::chrono::milliseconds since_parked_check_{0};
  std::chrono::steady_clock::time_point last_sweep_ = std::chrono::steady_clock::now();
  std::unique_ptr<boost::asio::steady_timer> timer_;
  bool armed_ = false;
};

}  // namespace pgvigil::proxy
