#pragma once
// The only code in pgvigil that calls libpq: one PGconn, driven without blocking. What libpq
// says comes out as plain values (StatementResult, strings), so no other file needs its API.
//
// libpq owns the socket: it may close or replace it during connect, and closes it when the
// link breaks. Whoever watches the socket reads socket() again after every call that may do so
// (poll_connect, consume_input, flush, send_query).

#include <libpq-fe.h>
#include <openssl/types.h>

#include <optional>
#include <string>
#include <vector>

#include "pool/connection_parameters.hpp"

namespace pgvigil::pool {

// One result of a statement of pgvigil's own (a ping, a SET, the reset query).
struct StatementResult {
  enum class Status { rows, command, empty, error, other };
  Status status = Status::other;
  std::optional<std::string> first_value;  // rows: the first column of the first row, if any
  // rows: the first row's columns (nullopt for NULL); empty when there is none. Only filled for
  // statements sent with send_query_params, the one kind that asks for more than one value.
  std::vector<std::optional<std::string>> first_row;
  std::string sqlstate;                    // error: the SQLSTATE ("XX000" when none was sent)
  std::string message;                     // error: the primary message, on one line
};

class LibpqLink {
 public:
  LibpqLink() = default;
  ~LibpqLink() { finish(); }
  LibpqLink(const LibpqLink&) = delete;
  LibpqLink& operator=(const LibpqLink&) = delete;

  // --- connecting: libpq's non-blocking state machine (PQconnectStartParams, PQconnectPoll).

  // false when libpq gives up at once; error_message() says why.
  bool start_connect(const ConnectionParameters& parameters);
  enum class Poll { read, write, ok, failed };  // what to wait for before the next poll
  Poll poll_connect();
  // After Poll::ok: non-blocking mode for everything else (so nothing here can block the event
  // loop), and the notice receiver that keeps a FATAL. false with error_message() on failure.
  bool finish_connect();

  int socket() const { return conn_ ? PQsocket(conn_) : -1; }  // -1 when libpq has none
  SSL* tls() const { return tls_; }  // the link's OpenSSL object; null when in the clear
  int backend_pid() const;
  std::string parameter_status(const char* name) const;  // "" when the server sent none
  std::string error_message() const;                     // PQerrorMessage, on one line
  // A handle that can cancel what the backend runs now (PQcancel blocks: call it off the event
  // loop). The caller frees it with PQfreeCancel. Null when not connected.
  PGcancel* cancel_handle() const { return conn_ ? PQgetCancel(conn_) : nullptr; }

  // --- statements (simple query protocol)

  bool send_query(const std::string& sql);
  // The same with $1, $2, ... bound to `parameters` (text), so no value is ever spliced into
  // SQL; its results carry first_row.
  bool send_query_params(const std::string& sql, const std::vector<std::string>& parameters);
  enum class Flush { done, pending, failed };  // pending: wait until writable, flush again
  Flush flush();
  // Reads what arrived; false when the link broke (libpq may have closed the socket).
  bool consume_input();
  bool busy() const { return conn_ == nullptr || PQisBusy(conn_) != 0; }
  bool broken() const { return conn_ == nullptr || PQstatus(conn_) == CONNECTION_BAD; }
  // The next result of the statement in progress; nullopt once all were read (ReadyForQuery).
  // Call only when !busy().
  std::optional<StatementResult> next_result();
  // Drops whatever results libpq holds that need no further input (a stray notice's leftovers
  // on an idle connection).
  void discard_results();

  // A FATAL (or PANIC) the server sent before closing: pg_terminate_backend, a shutdown.
  const std::optional<std::string>& server_fatal() const { return server_fatal_; }

  // PQfinish. In non-blocking mode it cannot block: the 5-byte Terminate fits the socket buffer
  // or is dropped.
  void finish();
  PGconn* native_handle() const { return conn_; }  // for tests that speak libpq themselves

 private:
  static void on_notice(void* self, const PGresult* result);

  bool want_first_row_ = false;  // the statement in progress was sent by send_query_params

  PGconn* conn_ = nullptr;
  SSL* tls_ = nullptr;  // looked up once connected: the relay asks often
  std::optional<std::string> server_fatal_;
};

// libpq's messages end in a newline and may span lines; a log line wants one line.
std::string one_line(const char* text);

}  // namespace pgvigil::pool
