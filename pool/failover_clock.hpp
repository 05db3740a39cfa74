#pragma once
// Which host of a database's list its connections use, and how long a move to another took:
// from the first sign that the host in use is going (an attempt on it refused, unanswered or
// answered in another role, a role change it reported, the server turning suspect) to the first
// connection to the new host ready to serve (lent to a waiting client, or idle for the next).
// Shared by the shards of one database (ServerHealth owns it), so thread-safe; the checks made
// on every ping and return are one atomic load each.

#include <atomic>
#include <mutex>
#include <optional>
#include <string>

#include "pool/failure_diagnosis.hpp"  // Clock

namespace pgvigil::pool {

class FailoverClock {
 public:
  // A connection reached `host`. True when the database was using another host until now: a
  // failover (or a switchover), and the clock waits for the first lending on `host`. Reaching
  // the host in use again means it was not going: an earlier sign is forgotten.
  bool moved_to(const std::string& host);
  // A sign at `at` that `host` may be going; counts only for the host in use, and only the
  // earliest counts.
  void sign_on(const std::string& host, Clock::time_point at);
  // The same, for whichever host is in use.
  void sign_on_current(Clock::time_point at);
  // The server in use answered (healthy again) with no move under way: its signs are forgotten.
  void server_answered();
  // A connection to `host` answered (a ping): if it is the host in use and no move is under
  // way, its signs came to nothing and are forgotten.
  void answered_on(const std::string& host);
  // Whether a sign is kept: answered_on() is worth calling.
  bool has_sign() const { return has_sign_.load(std::memory_order_relaxed); }
  // True while a move waits for its first connection ready to serve: served_on() is worth
  // calling.
  bool move_pending() const { return move_pending_.load(std::memory_order_relaxed); }
  // A connection to `host` is ready to serve: the first since the move stops the clock and
  // returns the time since the first sign; nullopt otherwise.
  std::optional<Clock::duration> served_on(const std::string& host);
  // A reload replaced the host list: the first host of the new one is no move.
  void reset();

 private:
  mutable std::mutex mutex_;
  std::string current_host_;  // the host connections last reached; "" before the first
  void set_sign(std::optional<Clock::time_point> at);  // under mutex_
  std::optional<Clock::time_point> first_sign_;
  std::atomic<bool> has_sign_{false};
  std::atomic<bool> move_pending_{false};
};

}  // namespace pgvigil::pool
