#pragma once
// A libpq client of pgvigil's proxy for the fault suite: every step has a deadline, so a proxy
// that never answers shows up as `finished == false` after the deadline instead of a hung test.

#include <libpq-fe.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace pgvigil::testing {

// What the client saw, and when.
struct ClientOutcome {
  bool finished = false;  // false: nothing came back before the deadline (a hang)
  bool ok = false;        // the step succeeded
  std::string sqlstate;   // of the ErrorResponse, "" when none (or the connection just broke)
  std::string message;    // libpq's error message, one line
  double seconds = 0;     // from the start of the step to its end (or the deadline)
};

class ProxyClient {
 public:
  // Starts a connection to 127.0.0.1:port, database `dbname`, as `user`; the outcome of the
  // start-up (and the session's first checkout, when the proxy does one then) is connect().
  ProxyClient(std::uint16_t port, const std::string& dbname, const std::string& user,
              std::chrono::milliseconds timeout);
  const ClientOutcome& connect() const { return connect_; }

  // Sends sql and reads every result up to ReadyForQuery; ok when the last one succeeded.
  ClientOutcome query(const std::string& sql, std::chrono::milliseconds timeout);
  // Only sends sql; finish() reads the answer.
  bool send(const std::string& sql);
  ClientOutcome finish(std::chrono::milliseconds timeout);

 private:
  struct Finish {
    void operator()(PGconn* conn) const { PQfinish(conn); }
  };
  std::unique_ptr<PGconn, Finish> conn_;
  ClientOutcome connect_;
  std::chrono::steady_clock::time_point sent_at_;
};

// "08006" from a verbose libpq message ("FATAL:  08006: ..."), "" when it carries none.
std::string sqlstate_in_message(const std::string& message);

}  // namespace pgvigil::testing
