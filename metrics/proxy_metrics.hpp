#pragma once
// The client-facing side's statistics, per pool (the database clients name). Families are
// built with the Registry; children are created by add_client_pool from a closed set and removed with it.
// Thread-safe. Implemented next to the pool metrics (families.cpp is the one naming place).

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace pgvigil::metrics {

// What a session relayed since it last reported (once per transaction, or per MiB).
struct RelayCounts {
  std::uint64_t bytes_to_server = 0;  // pgvigil_relayed_bytes_total{pool,direction="to_server"}
  std::uint64_t bytes_to_client = 0;  // ...{direction="to_client"}
  std::uint64_t queries = 0;          // pgvigil_queries_total{pool}
  std::uint64_t transactions = 0;     // pgvigil_transactions_total{pool}
};

class ClientMetrics {
 public:
  virtual ~ClientMetrics() = default;
  virtual void client_connected() = 0;     // pgvigil_client_connections{pool} +1
  virtual void client_disconnected() = 0;  // -1
  // pgvigil_client_errors_total{pool,class}: class is the SQLSTATE's first two characters
  // ("28", "53", "08", "3D", "57", "0A", ...), a closed set: unknown classes count as "other".
  virtual void client_error(std::string_view sqlstate) = 0;
  // pgvigil_pinned_clients{pool,cause}: +1 when a client is pinned, -1 when it leaves. `cause`
  // is one of those the pool was added with; others are not counted.
  virtual void client_pinned(std::string_view cause, int delta) = 0;
  // One call (one lock) for the four relay counters. The proxy calls it when metrics are read,
  // with what its routes relayed since the last time (proxy/relay_tally.hpp).
  virtual void relayed(const RelayCounts& counts) = 0;
};

// pgvigil_client_startup_errors_total{class}: errors sent to clients before they reached a
// database's pool (an unknown database, a malformed startup packet, too many client
// connections), by the same SQLSTATE classes as client_error. Thread-safe.
class StartupErrorMetrics {
 public:
  virtual ~StartupErrorMetrics() = default;
  virtual void startup_error(std::string_view sqlstate) = 0;
};

}  // namespace pgvigil::metrics
