#pragma once
// What a ServerConnection needs from the code that speaks PostgreSQL's protocol to its server:
// a non-blocking connect, pgvigil's own statements (pings, SETs, the reset query) and what the
// server reported. Two implementations: LibpqLink (libpq; every pool that logs in with a
// password) and one the proxy gives for per-user pools that log in with what the client's own
// login proved (a SCRAM ClientKey or an md5 hash), which libpq cannot use (see ServerLogin).
//
// The link owns the socket: it may close or replace it during connect, and closes it when the
// link breaks. Whoever watches the socket reads socket() again after every call that may do so
// (poll_connect, consume_input, flush, send_query).

#include <openssl/types.h>

#include <functional>
#include <memory>
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
  std::string sqlstate;  // error: the SQLSTATE ("XX000" when none was sent)
  std::string message;   // error: the primary message, on one line
};

// Cancels what the backend runs now. It opens a connection of its own and blocks: run it off
// the event loop. false with `error` set when the request could not be sent.
using CancelOrder = std::function<bool(std::string& error)>;

class ServerLink {
 public:
  virtual ~ServerLink() = default;

  // --- connecting

  // false when the link gives up at once; error_message() says why.
  virtual bool start_connect(const ConnectionParameters& parameters) = 0;
  enum class Poll { read, write, ok, failed };  // what to wait for before the next poll
  virtual Poll poll_connect() = 0;
  // After Poll::ok: whatever the link needs before it is used (non-blocking mode, the notice
  // receiver that keeps a FATAL). false with error_message() on failure.
  virtual bool finish_connect() = 0;

  virtual bool open() const = 0;   // connected, or connecting: finish() not yet called
  virtual int socket() const = 0;  // -1 when there is none
  virtual SSL* tls() const = 0;    // the link's OpenSSL object; null when in the clear
  virtual int backend_pid() const = 0;
  virtual std::string parameter_status(const char* name) const = 0;  // "" when none was sent
  virtual std::string error_message() const = 0;                     // on one line
  // Empty when not connected.
  virtual CancelOrder cancel_order() const = 0;

  // --- statements

  virtual bool send_query(const std::string& sql) = 0;  // simple query protocol
  // The same with $1, $2, ... bound to `parameters` (text), so no value is ever spliced into
  // SQL; its results carry first_row.
  virtual bool send_query_params(const std::string& sql,
                                 const std::vector<std::string>& parameters) = 0;
  enum class Flush { done, pending, failed };  // pending: wait until writable, flush again
  virtual Flush flush() = 0;
  // Reads what arrived; false when the link broke (the socket may be gone).
  virtual bool consume_input() = 0;
  // The next result cannot be had without more input.
  virtual bool busy() const = 0;
  virtual bool broken() const = 0;
  // The next result of the statement in progress; nullopt once all were read (ReadyForQuery).
  // Call only when !busy().
  virtual std::optional<StatementResult> next_result() = 0;
  // Drops whatever results are held that need no further input (a stray notice's leftovers on
  // an idle connection).
  virtual void discard_results() = 0;

  // A FATAL (or PANIC) the server sent before closing: pg_terminate_backend, a shutdown.
  virtual const std::optional<std::string>& server_fatal() const = 0;

  // Sends Terminate (if it fits the socket buffer: never blocks) and closes.
  virtual void finish() = 0;
};

// How a pool's connections log in when libpq cannot: set in ServerEndpoint::login by whoever
// holds the credential (the proxy, for per-user pools). Compared by identity: a new credential
// is a new endpoint.
class ServerLogin {
 public:
  virtual ~ServerLogin() = default;
  virtual std::unique_ptr<ServerLink> make_link() const = 0;
};

// Messages from libpq (and servers) end in a newline and may span lines; a log line wants one.
std::string one_line(const char* text);

}  // namespace pgvigil::pool
