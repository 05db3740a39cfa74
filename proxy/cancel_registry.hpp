#pragma once
// Maps the BackendKeyData pgvigil gave each client to that client's session, so a CancelRequest
// (which arrives on a new connection, possibly on another worker) reaches the right session and
// no other. Thread-safe; the only state shared between workers, touched once per connect,
// disconnect and cancel.
//
// A key is all a CancelRequest needs, so keys must be impossible to predict from the ones a
// client has seen: both halves come from OpenSSL's CSPRNG (RAND_bytes), as PostgreSQL draws its
// own (pg_strong_random). A seeded general-purpose generator would not do: its output reveals
// its state.

#include <boost/unordered/unordered_flat_map.hpp>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>

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
  // idle client's registry entry is one small node.) nullopt only when the system has no
  // randomness to give (RAND_bytes failed), which the caller reports to its client.
  std::optional<CancelKey> add(std::weak_ptr<CancelTarget> target);
  void remove(CancelKey key);
  // Asks the session holding `key` to cancel; false when no session does (a stale or forged
  // key, which is ignored as PostgreSQL ignores it).
  bool cancel(CancelKey key);
  // Calls request_shutdown(forced) on every registered session.
  void shut_down_all(bool forced);

 private:
  std::mutex mutex_;
  // Open addressing: an entry is its 24 bytes in one array, not a node of its own (48 bytes with
  // malloc's header) plus a bucket; every client has one (memory per idle client).
  boost::unordered_flat_map<std::uint64_t, std::weak_ptr<CancelTarget>> sessions_;
};

// A key drawn from the CSPRNG: a positive 31-bit process id (what a client expects of a
// backend's) and a 32-bit secret. nullopt when RAND_bytes fails.
std::optional<CancelKey> random_cancel_key();

}  // namespace pgvigil::proxy
