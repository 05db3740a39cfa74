#pragma once
// What the sessions of one route relayed, added up on the route's worker without a lock, and
// handed to the database's counters when /metrics is read (ProxyService::publish_relayed). The
// counters themselves are shared by every shard of a database: updating them on every
// transaction meant a shared lock and four contended atomics per transaction.

#include <atomic>
#include <cstdint>

#include "metrics/proxy_metrics.hpp"

namespace pgvigil::proxy {

class RelayTally {
 public:
  void add_counts(std::uint64_t queries, std::uint64_t transactions) {
    queries_.fetch_add(queries, std::memory_order_relaxed);
    transactions_.fetch_add(transactions, std::memory_order_relaxed);
  }
  // Bytes as they are written: a session keeps no count of its own (8 bytes for every idle
  // client), and one uncontended add per write is what a per-transaction flush cost too.
  void add_bytes_to_server(std::uint64_t bytes) {
    bytes_to_server_.fetch_add(bytes, std::memory_order_relaxed);
  }
  void add_bytes_to_client(std::uint64_t bytes) {
    bytes_to_client_.fetch_add(bytes, std::memory_order_relaxed);
  }

  // What was added since the last call. Called by one thread at a time (the metrics reader).
  metrics::RelayCounts take_new() {
    const metrics::RelayCounts now{bytes_to_server_.load(std::memory_order_relaxed),
                                   bytes_to_client_.load(std::memory_order_relaxed),
                                   queries_.load(std::memory_order_relaxed),
                                   transactions_.load(std::memory_order_relaxed)};
    const metrics::RelayCounts fresh{now.bytes_to_server - taken_.bytes_to_server,
                                     now.bytes_to_client - taken_.bytes_to_client,
                                     now.queries - taken_.queries,
                                     now.transactions - taken_.transactions};
    taken_ = now;
    return fresh;
  }

 private:
  std::atomic<std::uint64_t> bytes_to_server_{0};
  std::atomic<std::uint64_t> bytes_to_client_{0};
  std::atomic<std::uint64_t> queries_{0};
  std::atomic<std::uint64_t> transactions_{0};
  metrics::RelayCounts taken_;  // the reader's: what take_new() handed out so far
};

}  // namespace pgvigil::proxy
