#pragma once
// Maps the BackendKeyData pgvigil gave each client to that client's session, so a CancelRequest
// (which arrives on a new connection, possibly on another worker) reaches the right session and
// no other. Thread-safe; the only state shared between workers, touched once per connect,
// disconnect and cancel.

#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <unordered_map>

namespace pgvigil::proxy {

struct CancelKey {
  std::uint32_t process_id = 0;
  std::uint32_t secret = 0;
  std::uint64_t packed() const { return (std::uint64_t{process_id} << 32) | secret; }
};

// A live client session as other threads see it: what a cancel reaches, and what a shutdown
// drains. Both calls may come from any thread.
class CancelTarget {
 public:
  virtual ~CancelTarget() = default;
  virtual void request_cancel() = 0;
  // forced: end now (57P01 even mid-transaction); otherwise at the end of the current transaction.
  virtual void request_shutdown(bool forced) = 0;
};

class CancelRegistry {
 public:
  // A fresh key no live session has, bound to `target`. (A weak pointer, not a callback: an
  // idle client's registry entry is one small node.)
  CancelKey add(std::weak_ptr<CancelTarget> target);
  void remove(CancelKey key);
  // Asks the session holding `key` to cancel; false when no session does (a stale or forged
  // key, which is ignored as PostgreSQL ignores it).
  bool cancel(CancelKey key);
  // Calls request_shutdown(forced) on every registered session.
  void shut_down_all(bool forced);

 private:
  std::mutex mutex_;
  std::unordered_map<std::uint64_t, std::weak_ptr<CancelTarget>> sessions_;
  std::mt19937_64 random_{std::random_device{}()};
};

}  // namespace pgvigil::proxy
