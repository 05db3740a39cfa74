#pragma once
// pgvigil's own client side of PostgreSQL's protocol, for the server logins libpq cannot make:
// a per-user pool whose role's password pgvigil does not have, only what the client's login
// proved (auth::LoginProof: the SCRAM keys, or the md5 hash). libpq 15 wants a password (a
// ClientKey is accepted from libpq 18 on) and cannot take over a socket logged in by someone
// else, so this link connects, negotiates TLS, logs in and then runs pgvigil's own statements
// itself. Everything else about the connection (the relay, the pool's checks) is the same as
// over libpq: both are a pool::ServerLink.
//
// It reads libpq's connection parameters, as the pool makes them (connection_parameters.cpp):
// host or Unix socket directory, hostaddr, port, dbname, user, application_name, keep-alive
// and the ssl* keys. sslmode as libpq takes it, except `allow`, which never tries TLS here
// (libpq retries with TLS when the server refuses a plain login); `require` verifies the
// chain when sslrootcert is given, as libpq does when its root file exists. No file is read by
// default (libpq's ~/.postgresql/): verify-ca and verify-full need sslrootcert, and sslcert
// needs sslkey.
//
// Split by job: wire_link.cpp (buffers, statements, server messages), wire_link_connect.cpp
// (socket, TLS, startup and authentication), wire_link_cancel.cpp (CancelRequest).

#include <openssl/ssl.h>

#include <boost/asio/generic/stream_protocol.hpp>
#include <deque>
#include <map>
#include <memory>
#include <span>
#include <string>

#include "pool/server_link.hpp"
#include "proxy/auth/login_proof.hpp"
#include "proxy/auth/scram_client.hpp"
#include "proxy/wire/backend_parser.hpp"
#include "proxy/wire/frame_decoder.hpp"

namespace pgvigil::proxy::login {

// Where and how to connect, read from libpq's connection parameters.
struct LoginTarget {
  std::string host;      // a name, an address, or a Unix socket directory ("/...")
  std::string hostaddr;  // the address to connect to, resolved by the pool
  std::string port = "5432";
  std::string dbname;
  std::string user;
  std::string application_name;
  std::string sslmode = "prefer";
  std::string sslrootcert;
  std::string sslcert;
  std::string sslkey;
  std::string sslcrl;
  bool keepalives = false;
  std::string keepalives_idle;
  std::string keepalives_interval;
  std::string keepalives_count;
  std::string tcp_user_timeout;

  bool unix_socket() const { return host.starts_with('/'); }
  std::string socket_path() const { return host + "/.s.PGSQL." + port; }
  // As libpq names it in its messages: server at "addr", port N / on socket "path".
  std::string describe() const;
  // Where to connect (the login's socket and a cancel's): the Unix socket's path, or hostaddr
  // (else host, which must then be an address) and port. nullopt with `error` when there is
  // none.
  std::optional<boost::asio::generic::stream_protocol::endpoint> socket_address(
      std::string& error) const;
};

// nullopt with `error` for a key this link does not understand.
std::optional<LoginTarget> read_target(const pool::ConnectionParameters& parameters,
                                       std::string& error);

class WireLink final : public pool::ServerLink {
 public:
  explicit WireLink(auth::LoginProof proof) : proof_(std::move(proof)) {}
  ~WireLink() override { finish(); }
  WireLink(const WireLink&) = delete;
  WireLink& operator=(const WireLink&) = delete;

  bool start_connect(const pool::ConnectionParameters& parameters) override;
  Poll poll_connect() override;
  bool finish_connect() override { return true; }

  bool open() const override { return stage_ != Stage::none; }
  int socket() const override { return fd_; }
  SSL* tls() const override { return tls_; }
  int backend_pid() const override { return static_cast<int>(key_.process_id); }
  std::string parameter_status(const char* name) const override;
  std::string error_message() const override { return error_; }
  pool::CancelOrder cancel_order() const override;

  bool send_query(const std::string& sql) override;
  bool send_query_params(const std::string& sql,
                         const std::vector<std::string>& parameters) override;
  Flush flush() override;
  bool consume_input() override;
  bool busy() const override;
  bool broken() const override { return stage_ == Stage::broken || fd_ < 0; }
  std::optional<pool::StatementResult> next_result() override;
  void discard_results() override;
  const std::optional<std::string>& server_fatal() const override { return server_fatal_; }
  void finish() override;

 private:
  enum class Stage {
    none,            // not started, or finished
    tcp_connect,     // connect() in progress
    tls_answer,      // SSLRequest sent, waiting for 'S' or 'N'
    tls_handshake,   // SSL_connect in progress
    authenticating,  // StartupMessage sent: authentication, then parameters until ReadyForQuery
    ready,           // logged in: pgvigil's statements and the relay
    broken,
  };
  enum class Io { done, would_block, closed, failed };

  // --- connecting (wire_link_connect.cpp)
  Poll fail(std::string message);
  Poll step_connect();  // one pass of the state machine; what to wait for next
  Poll after_tcp_connect();
  Poll on_tls_answer();
  Poll start_tls();
  Poll continue_tls();
  void queue_startup();
  Poll read_login();
  // An 'R' message during login: queues the answer, or fails.
  std::optional<std::string> answer_authentication(std::span<const char> payload);

  // --- bytes (wire_link.cpp)
  Io write_out();  // as much of out_ as the socket takes
  Io read_in();    // what the socket has, appended to in_
  // The next whole server message at the front of in_ (false: none yet, or broken on a
  // malformed one); drop it with pop_message once handled.
  bool peek_message(char& type, std::span<const char>& payload);
  void pop_message();
  void handle_statement_message(char type, std::span<const char> payload);
  void note_error(std::span<const char> payload, bool in_statement);
  // Keeps an error's or notice's text as server_fatal() when it announces the server closes.
  void note_close_announcement(const wire::ErrorResponseView& message);
  void note_parameter(std::span<const char> payload);
  void start_statement(bool want_first_row);

  auth::LoginProof proof_;
  LoginTarget target_;
  Stage stage_ = Stage::none;
  int fd_ = -1;
  SSL_CTX* tls_context_ = nullptr;
  SSL* tls_ = nullptr;
  std::string error_;
  std::optional<std::string> server_fatal_;
  std::map<std::string, std::string, std::less<>> parameters_;
  struct Key {
    std::uint32_t process_id = 0;
    std::uint32_t secret = 0;
  } key_;
  std::unique_ptr<auth::ScramClient> scram_;
  bool scram_verified_ = false;  // the server's SCRAM signature was checked

  std::string out_;
  std::size_t out_sent_ = 0;
  std::string in_;
  std::size_t in_used_ = 0;     // bytes at the front of in_ already handled
  std::size_t frame_size_ = 0;  // of the message peek_message last found
  wire::FrameDecoder decoder_{wire::Phase::backend};

  // The statement in progress: its results until ReadyForQuery.
  bool in_statement_ = false;
  bool want_first_row_ = false;
  bool ready_seen_ = false;
  std::optional<pool::StatementResult> building_;  // a result whose rows are arriving
  std::deque<pool::StatementResult> results_;
};

}  // namespace pgvigil::proxy::login
