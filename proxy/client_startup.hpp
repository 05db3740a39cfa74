#pragma once
// The start of a client connection, before it reaches a pool: from its first byte to
// AuthenticationOk. It answers encryption requests, forwards cancel requests, reads the
// StartupMessage, finds the route, checks the link against its TLS rule, negotiates the protocol version and authenticates; what the
// session needs afterwards comes out as Admitted. No server connection is involved.

#include <boost/asio/awaitable.hpp>
#include <optional>
#include <string>

#include "proxy/auth/login_proof.hpp"
#include "proxy/client_error.hpp"
#include "proxy/client_settings.hpp"
#include "proxy/frame_reader.hpp"
#include "proxy/proxy_service.hpp"
#include "stream/socket_stream.hpp"

namespace pgvigil::proxy {

// A client that completed its startup.
struct Admitted {
  Route* route = nullptr;
  SettingMap settings;   // what it asked for in its StartupMessage
  std::string leftover;  // bytes it sent right after authenticating (its first query), or ""
};

class ClientStartup {
 public:
  ClientStartup(ProxyService& service, stream::SocketStream& stream,
                stream::SocketStream::Peer peer);

  // Reads up to the StartupMessage and finds the client's route. An error is what to tell the
  // client (an empty sqlstate: nothing, as for a cancel request or a client gone).
  boost::asio::awaitable<std::optional<ClientError>> read_startup();
  // Who the client is (from its accept: the startup gate, the TLS rule and the access rules).
  const stream::SocketStream::Peer& peer() const { return peer_; }
  // The route read_startup() found (null before, or when the database is unknown): an error
  // after it counts against that database.
  Route* route() const { return route_; }
  // The user the StartupMessage named.
  const std::string& user() const { return user_; }
  // Authenticates by the route's method. Once this returns nullopt the client is in, and
  // take_greeting() gives what tells it so, not sent yet.
  boost::asio::awaitable<std::optional<ClientError>> authenticate();
  std::string take_greeting() { return std::move(greeting_); }
  // After authenticate(): what the login proved (for a per-user pool's server logins).
  const auth::LoginProof& login_proof() const { return proof_; }
  Admitted admitted() &&;
  // The client asked for TLS and its handshake did not complete: it cannot read a plain error.
  bool tls_handshake_failed() const { return tls_handshake_failed_; }

 private:
  // Writes `bytes`; an error with no SQLSTATE when the client is gone.
  boost::asio::awaitable<std::optional<ClientError>> send(std::span<const char> bytes);
  // SSLRequest: TLS when a certificate is configured ('S' and the handshake), else 'N'.
  boost::asio::awaitable<std::optional<ClientError>> answer_ssl_request();
  boost::asio::awaitable<std::optional<ClientError>> refuse_encryption();
  // What the route's tls_mode asks of the link (and of the client's certificate).
  std::optional<ClientError> check_link(const std::string& user) const;
  // auth.hba_file's rule for this client: refused, or the method it authenticates with
  // (method_); without rules, the route's auth_method.
  std::optional<ClientError> apply_access_rules(const std::string& user);
  // A client certificate verified against listen.tls.ca_file (and, unless must_name is null,
  // whose common name is *must_name).
  std::optional<ClientError> check_client_certificate(const std::string* must_name) const;

  ProxyService& service_;
  stream::SocketStream& stream_;
  stream::SocketStream::Peer peer_;
  FrameReader reader_;
  Route* route_ = nullptr;
  std::string user_;
  SettingMap settings_;
  AuthMethod method_ = AuthMethod::trust;  // how the client authenticates (after the rules)
  auth::LoginProof proof_;
  std::string greeting_;  // authenticate()'s last messages, not sent yet
  bool tls_handshake_failed_ = false;
};

}  // namespace pgvigil::proxy
