#pragma once
// The connections each server of a database's list holds, counted over all of the database's
// shards: a shard spreading its connections over standbys (least connections first) must see
// the other shards' too, or two shards of one connection each would both pick the first.
// Thread-safe: shards on several workers count in and out.

#include <algorithm>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace pgvigil::pool {

class HostLoad {
 public:
  // A connection reached `server` (+1) or is gone (-1).
  void count(const std::string& server, int delta) {
    std::lock_guard lock(mutex_);
    auto& connections = connections_[server];
    connections += delta;
    if (connections <= 0) connections_.erase(server);
  }
  // A connection attempt counted on the server it tries first, from the moment the order is
  // chosen until the attempt is over (then the connection itself counts, if it got there).
  class Reservation {
   public:
    Reservation() = default;
    Reservation(HostLoad* load, std::string server) : load_(load), server_(std::move(server)) {}
    Reservation(Reservation&& other) noexcept
        : load_(std::exchange(other.load_, nullptr)), server_(std::move(other.server_)) {}
    Reservation& operator=(Reservation&& other) noexcept {
      if (this != &other) {
        release();
        load_ = std::exchange(other.load_, nullptr);
        server_ = std::move(other.server_);
      }
      return *this;
    }
    ~Reservation() { release(); }

   private:
    void release() {
      if (load_ != nullptr) std::exchange(load_, nullptr)->count(server_, -1);
    }
    HostLoad* load_ = nullptr;
    std::string server_;
  };

  // Sorts `order` (indexes into `servers`) least connections and attempts first, ties in the
  // given order, and reserves the first for the caller's attempt: in one step, so that two
  // shards opening connections at once do not both pick the same server.
  std::vector<std::size_t> least_first(const std::vector<std::string>& servers,
                                       std::vector<std::size_t> order, Reservation& reserved) {
    reserved = Reservation();  // an earlier one is over (outside the lock: it takes it)
    {
      std::lock_guard lock(mutex_);
      std::vector<int> on(servers.size(), 0);
      for (std::size_t i = 0; i < servers.size(); ++i) {
        const auto found = connections_.find(servers[i]);
        if (found != connections_.end()) on[i] = found->second;
      }
      std::stable_sort(order.begin(), order.end(),
                       [&on](std::size_t a, std::size_t b) { return on[a] < on[b]; });
      if (order.empty()) return order;
      ++connections_[servers[order.front()]];
    }
    reserved = Reservation(this, servers[order.front()]);
    return order;
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::string, int> connections_;
};

}  // namespace pgvigil::pool
