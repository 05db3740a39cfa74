#include "daemon/worker_group.hpp"

#include "daemon/worker_count.hpp"

#include <spdlog/spdlog.h>

namespace pgvigil::daemon {

WorkerGroup::WorkerGroup(int workers) {
  workers = worker_count(workers);
  for (int i = 0; i < workers; ++i) {
    // Concurrency hint 1: each io_context is run by exactly one thread, so Asio can skip locks.
    contexts_.push_back(std::make_unique<boost::asio::io_context>(1));
    guards_.emplace_back(contexts_.back()->get_executor());
  }
}

WorkerGroup::~WorkerGroup() {
  stop();
  for (auto& thread : threads_) {
    if (thread.joinable()) thread.join();
  }
}

void WorkerGroup::run() {
  for (std::size_t i = 1; i < contexts_.size(); ++i) {
    threads_.emplace_back([this, i] { contexts_[i]->run(); });
  }
  contexts_[0]->run();
  for (auto& thread : threads_) thread.join();
  threads_.clear();
}

void WorkerGroup::stop() {
  for (auto& guard : guards_) guard.reset();
  for (auto& context : contexts_) context->stop();
}

}  // namespace pgvigil::daemon
