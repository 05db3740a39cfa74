#pragma once
// The only code in pgvigil that calls libpq: one PGconn, driven without blocking
// (PQconnectStartParams, PQconnectPoll, then non-blocking mode). What libpq says comes out as
// plain values (StatementResult, strings), so no other file needs its API.

#include <libpq-fe.h>

#include "pool/server_link.hpp"

namespace pgvigil::pool {

class LibpqLink final : public ServerLink {
 public:
  LibpqLink() = default;
  ~LibpqLink() override { finish(); }
  LibpqLink(const LibpqLink&) = delete;
  LibpqLink& operator=(const LibpqLink&) = delete;

  bool start_connect(const ConnectionParameters& parameters) override;
  Poll poll_connect() override;
  // Non-blocking mode for everything else (so nothing here can block the event loop), and the
  // notice receiver that keeps a FATAL.
  bool finish_connect() override;

  bool open() const override { return conn_ != nullptr; }
  int socket() const override { return conn_ ? PQsocket(conn_) : -1; }
  SSL* tls() const override { return tls_; }
  int backend_pid() const override;
  std::string parameter_status(const char* name) const override;
  std::string error_message() const override;  // PQerrorMessage
  CancelOrder cancel_order() const override;   // PQcancel

  bool send_query(const std::string& sql) override;
  bool send_query_params(const std::string& sql,
                         const std::vector<std::string>& parameters) override;
  Flush flush() override;
  bool consume_input() override;
  bool busy() const override { return conn_ == nullptr || PQisBusy(conn_) != 0; }
  bool broken() const override { return conn_ == nullptr || PQstatus(conn_) == CONNECTION_BAD; }
  std::optional<StatementResult> next_result() override;
  void discard_results() override;
  const std::optional<std::string>& server_fatal() const override { return server_fatal_; }
  // PQfinish. In non-blocking mode it cannot block: the 5-byte Terminate fits the socket buffer
  // or is dropped.
  void finish() override;

  PGconn* native_handle() const { return conn_; }  // for tests that speak libpq themselves

 private:
  static void on_notice(void* self, const PGresult* result);

  bool want_first_row_ = false;  // the statement in progress was sent by send_query_params

  PGconn* conn_ = nullptr;
  SSL* tls_ = nullptr;  // looked up once connected: the relay asks often
  std::optional<std::string> server_fatal_;
};

}  // namespace pgvigil::pool
