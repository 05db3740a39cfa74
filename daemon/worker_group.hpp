#pragma once
// The event-loop threads: one io_context per worker, no state shared between them without a
// hop onto the owner's executor (Odyssey's model). Worker 0 also runs signals and admin HTTP.

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <memory>
#include <thread>
#include <vector>

namespace pgvigil::daemon {

class WorkerGroup {
 public:
  explicit WorkerGroup(int workers);  // workers <= 0: one per core (worker_count.hpp)
  ~WorkerGroup();

  int size() const { return static_cast<int>(contexts_.size()); }
  boost::asio::io_context& context(int index) { return *contexts_.at(index); }

  // Runs workers 1..n-1 on threads of their own and worker 0 on the calling thread, until
  // stop(). Returns when every worker has stopped.
  void run();
  // Thread-safe.
  void stop();

 private:
  using WorkGuard = boost::asio::executor_work_guard<boost::asio::io_context::executor_type>;
  std::vector<std::unique_ptr<boost::asio::io_context>> contexts_;
  std::vector<WorkGuard> guards_;
  std::vector<std::thread> threads_;
};

}  // namespace pgvigil::daemon
