#include "proxy/client_startup.hpp"

#include <spdlog/spdlog.h>

#include "proxy/authenticator.hpp"
#include "proxy/wire/backend_messages.hpp"
#include "proxy/wire/frame_decoder.hpp"
#include "proxy/wire/frontend_parser.hpp"
#include "proxy/wire/protocol.hpp"
#include "proxy/wire/startup_message.hpp"
#include "stream/server_tls.hpp"

namespace pgvigil::proxy {
namespace asio = boost::asio;
using asio::awaitable;

namespace {

wire::DecoderLimits limits_of(const ProxySettings& settings) {
  wire::DecoderLimits limits;
  limits.max_message_size = settings.max_message_bytes;
  return limits;
}

}  // namespace

ClientStartup::ClientStartup(ProxyService& service, stream::SocketStream& stream,
                             stream::SocketStream::Peer peer)
    : service_(service),
      stream_(stream),
      peer_(std::move(peer)),
      reader_(stream, limits_of(service.settings())) {}

awaitable<std::optional<ClientError>> ClientStartup::read_startup() {
  wire::StartupMessage startup;
  while (true) {
    auto next = co_await reader_.next();
    if (auto* error = std::get_if<ClientError>(&next)) co_return *error;
    const auto& frame = std::get<OwnedFrame>(next);
    if (frame.startup_code == wire::kSslRequestCode) {
      if (auto error = co_await answer_ssl_request()) co_return *error;
      continue;
    }
    if (frame.startup_code == wire::kGssEncRequestCode) {
      // GSSAPI encryption is not offered: 'N' tells the client to go on (or ask for TLS).
      if (auto error = co_await refuse_encryption()) co_return *error;
      continue;
    }
    if (frame.startup_code == wire::kCancelRequestCode) {
      if (auto key = wire::parse_cancel_request(frame.payload)) {
        service_.cancels().cancel({key->process_id, key->secret_key});
      }
      // A cancel connection gets no answer, as in PostgreSQL.
      co_return ClientError{"", "cancel request", "", ""};
    }
    if ((frame.startup_code >> 16) != wire::kProtocolMajor3) {
      co_return ClientError{
          sqlstate::kFeatureNotSupported,
          "unsupported frontend protocol " + std::to_string(frame.startup_code >> 16) + "." +
              std::to_string(frame.startup_code & 0xffff) + ": pgvigil speaks protocol 3.0",
          "", ""};
    }
    auto parsed = wire::parse_startup_message(frame.payload, frame.startup_code);
    if (!parsed) co_return ClientError{sqlstate::kProtocolViolation, parsed.error(), "", ""};
    startup = std::move(parsed).value();
    break;
  }

  route_ = service_.find_route(startup.database);
  if (route_ == nullptr) {
    co_return ClientError{sqlstate::kInvalidCatalogName,
                          "database \"" + startup.database + "\" does not exist in pgvigil", "",
                          "pgvigil serves: " + service_.route_names()};
  }
  if (auto refusal = check_link(startup.user)) co_return *refusal;
  if (auto refusal = apply_access_rules(startup.user)) co_return *refusal;
  if (!startup.replication.empty()) {
    co_return ClientError{sqlstate::kFeatureNotSupported,
                          "replication connections are not supported through pgvigil", "",
                          "Connect to the server directly for replication."};
  }
  auto settings = settings_from_startup(startup);
  if (!settings) co_return ClientError{sqlstate::kProtocolViolation, settings.error(), "", ""};
  settings_ = std::move(settings).value();
  user_ = startup.user;

  std::vector<std::string> unsupported;
  for (const auto& parameter : startup.others) {
    if (parameter.name.starts_with("_pq_.")) unsupported.push_back(parameter.name);
  }
  if (startup.minor_version > 0 || !unsupported.empty()) {
    std::string negotiate;
    wire::append_negotiate_protocol_version(negotiate, 0, unsupported);
    if (auto gone = co_await send(negotiate)) co_return gone;
  }
  reader_.enter_normal_phase();
  co_return std::nullopt;
}

awaitable<std::optional<ClientError>> ClientStartup::send(std::span<const char> bytes) {
  boost::system::error_code ec;
  co_await stream_.write_all(bytes, ec);
  if (ec) co_return ClientError{"", "client went away", "", ""};
  co_return std::nullopt;
}

awaitable<std::optional<ClientError>> ClientStartup::refuse_encryption() {
  std::string refusal;
  wire::append_encryption_refusal(refusal);
  co_return co_await send(refusal);
}

awaitable<std::optional<ClientError>> ClientStartup::answer_ssl_request() {
  if (stream_.is_tls()) {
    co_return ClientError{sqlstate::kProtocolViolation, "SSLRequest over a TLS link", "", ""};
  }
  const auto context = service_.tls_context();
  if (!context) co_return co_await refuse_encryption();
  if (reader_.has_buffered()) {
    // As PostgreSQL (CVE-2021-23222): bytes after the request came in the clear, where anyone
    // on the path could have put them; they must not be taken as the client's once TLS begins.
    co_return ClientError{sqlstate::kProtocolViolation,
                          "received unencrypted data after SSL request", "", ""};
  }
  const char accept = 'S';
  if (auto gone = co_await send(std::span<const char>(&accept, 1))) co_return gone;
  boost::system::error_code ec;
  std::string failure;
  co_await stream::accept_tls(stream_, context, ec, failure);
  // Nothing can be told to a client whose handshake failed: it speaks TLS and has no session.
  if (ec) {
    tls_handshake_failed_ = true;
    spdlog::info("client TLS handshake failed: {}", failure);
    co_return ClientError{"", "TLS handshake failed: " + failure, "", ""};
  }
  co_return std::nullopt;
}

std::optional<ClientError> ClientStartup::check_link(const std::string& user) const {
  const auto mode = route_->settings.tls_mode;
  if (mode <= ClientTlsMode::allow || peer_.local) return std::nullopt;
  const auto database = route_->settings.database;
  if (!stream_.is_tls()) {
    return ClientError{sqlstate::kInvalidAuthorization,
                       "database \"" + database + "\" requires TLS: this connection is not encrypted",
                       "", "Connect with sslmode=require (or verify-ca, verify-full)."};
  }
  if (mode == ClientTlsMode::require) return std::nullopt;
  // verify-full: the certificate names the user too.
  return check_client_certificate(mode == ClientTlsMode::verify_full ? &user : nullptr);
}

std::optional<ClientError> ClientStartup::check_client_certificate(
    const std::string* must_name) const {
  const auto certificate = stream::client_certificate(stream_);
  if (!certificate.presented) {
    return ClientError{sqlstate::kInvalidAuthorization,
                       "database \"" + route_->settings.database +
                           "\" requires a valid client certificate",
                       "",
                       "Give the client a certificate signed by pgvigil's listen.tls.ca_file "
                       "(sslcert and sslkey in libpq)."};
  }
  if (!certificate.verified) {
    return ClientError{sqlstate::kInvalidAuthorization,
                       "client certificate not accepted: " + certificate.verify_error, "",
                       "It must be signed by a CA in pgvigil's listen.tls.ca_file."};
  }
  if (must_name != nullptr && certificate.common_name != *must_name) {
    return ClientError{sqlstate::kInvalidAuthorization,
                       "certificate authentication failed for user \"" + *must_name +
                           "\": the client certificate's common name is \"" +
                           certificate.common_name + "\"",
                       "", "The certificate's common name must be the user name."};
  }
  return std::nullopt;
}

std::optional<ClientError> ClientStartup::apply_access_rules(const std::string& user) {
  method_ = route_->settings.auth_method;
  const auto* rules = service_.access_rules();
  if (rules == nullptr) return std::nullopt;
  const auth::ConnectionSource source{peer_.local, peer_.address, stream_.is_tls()};
  const auto& database = route_->settings.database;
  const auto* rule = rules->match(source, database, user);
  const auto who = [&] {
    return (source.local ? std::string("local connection") : "host \"" + source.address + "\"") +
           ", user \"" + user + "\", database \"" + database + "\", " +
           (source.tls ? "TLS" : "no encryption");
  };
  if (rule == nullptr) {
    return ClientError{sqlstate::kInvalidAuthorization, "no pgvigil access rule for " + who(), "",
                       "Add a line for it to auth.hba_file."};
  }
  switch (rule->method) {
    case auth::AccessMethod::reject:
      return ClientError{sqlstate::kInvalidAuthorization,
                         "pgvigil's access rules reject " + who(), "", ""};
    case auth::AccessMethod::md5:
      method_ = AuthMethod::md5;
      return std::nullopt;
    case auth::AccessMethod::scram_sha_256:
      method_ = AuthMethod::scram_sha_256;
      return std::nullopt;
    case auth::AccessMethod::cert:
      // The certificate stands for the password: nothing more is asked.
      method_ = AuthMethod::trust;
      if (!stream_.is_tls()) {
        return ClientError{sqlstate::kInvalidAuthorization,
                           "certificate authentication needs TLS: " + who(), "",
                           "Connect with sslmode=verify-full, sslcert and sslkey."};
      }
      return check_client_certificate(&user);
    case auth::AccessMethod::trust:
      method_ = AuthMethod::trust;
      return std::nullopt;
  }
  return std::nullopt;
}

awaitable<std::optional<ClientError>> ClientStartup::authenticate() {
  const SecretSources secrets{service_.users(), route_->secret_lookup};
  co_return co_await proxy::authenticate(stream_, reader_, method_, user_, secrets, proof_,
                                         greeting_);
}

Admitted ClientStartup::admitted() && {
  return Admitted{route_, std::move(settings_), reader_.take_leftover()};
}

}  // namespace pgvigil::proxy
