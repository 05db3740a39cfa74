// WireLink's connect: the socket, TLS as sslmode asks, the StartupMessage and the login with
// what the client's own login proved, then the server's parameters until ReadyForQuery.
#include <fcntl.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <cerrno>
#include <cstring>

#include "probes/socket_options.hpp"
#include "proxy/auth/md5_auth.hpp"
#include "proxy/login/wire_link.hpp"
#include "proxy/wire/backend_parser.hpp"
#include "proxy/wire/byte_io.hpp"
#include "proxy/wire/frontend_messages.hpp"

namespace pgvigil::proxy::login {
namespace {

using namespace std::string_view_literals;

bool verifies_chain(const LoginTarget& target) {
  return target.sslmode == "verify-ca" || target.sslmode == "verify-full" ||
         (target.sslmode == "require" && !target.sslrootcert.empty());
}

bool needs_tls(const LoginTarget& target) {
  return target.sslmode == "require" || target.sslmode == "verify-ca" ||
         target.sslmode == "verify-full";
}

std::string openssl_error() {
  const unsigned long code = ERR_get_error();
  if (code == 0) return "unknown TLS error";
  char text[256] = {};
  ERR_error_string_n(code, text, sizeof text);
  return text;
}

bool is_ip_address(const std::string& host) {
  boost::system::error_code ec;
  boost::asio::ip::make_address(host, ec);
  return !ec;
}

}  // namespace

std::string LoginTarget::describe() const {
  if (unix_socket()) return "server on socket \"" + socket_path() + "\"";
  return "server at \"" + (hostaddr.empty() ? host : hostaddr) + "\", port " + port;
}

std::optional<boost::asio::generic::stream_protocol::endpoint> LoginTarget::socket_address(
    std::string& error) const {
  using Endpoint = boost::asio::generic::stream_protocol::endpoint;
  if (unix_socket()) {
    const auto path = socket_path();
    if (path.size() >= sizeof(sockaddr_un::sun_path)) {
      error = "Unix socket path \"" + path + "\" is too long";
      return std::nullopt;
    }
    return Endpoint(boost::asio::local::stream_protocol::endpoint(path));
  }
  boost::system::error_code ec;
  const auto numeric = boost::asio::ip::make_address(hostaddr.empty() ? host : hostaddr, ec);
  if (ec) {
    error = "no address for host \"" + host + "\"";
    return std::nullopt;
  }
  return Endpoint(
      boost::asio::ip::tcp::endpoint(numeric, static_cast<std::uint16_t>(std::stoi(port))));
}

std::optional<LoginTarget> read_target(const pool::ConnectionParameters& parameters,
                                       std::string& error) {
  LoginTarget target;
  std::string keepalives;
  const std::pair<const char*, std::string*> fields[] = {
      {"host", &target.host},
      {"hostaddr", &target.hostaddr},
      {"port", &target.port},
      {"dbname", &target.dbname},
      {"user", &target.user},
      {"application_name", &target.application_name},
      {"sslmode", &target.sslmode},
      {"sslrootcert", &target.sslrootcert},
      {"sslcert", &target.sslcert},
      {"sslkey", &target.sslkey},
      {"sslcrl", &target.sslcrl},
      {"keepalives", &keepalives},
      {"keepalives_idle", &target.keepalives_idle},
      {"keepalives_interval", &target.keepalives_interval},
      {"keepalives_count", &target.keepalives_count},
      {"tcp_user_timeout", &target.tcp_user_timeout},
  };
  for (const auto& [key, value] : parameters) {
    if (key == "gssencmode") continue;  // never offered: the link speaks no GSSAPI
    const auto* field = std::find_if(std::begin(fields), std::end(fields),
                                     [&](const auto& f) { return key == f.first; });
    if (field == std::end(fields)) {
      error = "connection parameter \"" + key + "\" is not supported for logins without a password";
      return std::nullopt;
    }
    *field->second = value;
  }
  target.keepalives = keepalives == "1";
  if (target.sslcert.empty() != target.sslkey.empty()) {
    // libpq falls back to ~/.postgresql/postgresql.key (or .crt); this link reads no defaults.
    error = "sslcert and sslkey go together for logins without a password";
    return std::nullopt;
  }
  if (target.host.empty()) target.host = "/var/run/postgresql";
  if (verifies_chain(target) && target.sslmode != "require" && target.sslrootcert.empty()) {
    error = "sslmode " + target.sslmode + " needs sslrootcert for logins without a password";
    return std::nullopt;
  }
  return target;
}

pool::ServerLink::Poll WireLink::fail(std::string message) {
  error_ = "connection to " + target_.describe() + " failed: " + std::move(message);
  stage_ = Stage::broken;
  return Poll::failed;
}

bool WireLink::start_connect(const pool::ConnectionParameters& parameters) {
  finish();
  auto target = read_target(parameters, error_);
  if (!target) return false;
  target_ = std::move(*target);
  const auto address = target_.socket_address(error_);
  if (!address) return false;
  fd_ = ::socket(address->protocol().family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    error_ = std::string("could not create socket: ") + std::strerror(errno);
    return false;
  }
  stage_ = Stage::tcp_connect;
  if (!target_.unix_socket()) {
    const int on = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    if (target_.keepalives) {
      probes::KeepaliveSettings keepalive;
      keepalive.idle = std::chrono::seconds(std::stoi(target_.keepalives_idle));
      keepalive.interval = std::chrono::seconds(std::stoi(target_.keepalives_interval));
      keepalive.count = std::stoi(target_.keepalives_count);
      keepalive.user_timeout = std::chrono::milliseconds(std::stoi(target_.tcp_user_timeout));
      if (const auto failed = probes::apply_keepalive(fd_, keepalive)) {
        fail("setting keep-alive: " + failed.message());
        return false;
      }
    }
  }
  if (::connect(fd_, address->data(), address->size()) != 0 && errno != EINPROGRESS) {
    fail(std::strerror(errno));
    return false;
  }
  return true;
}

pool::ServerLink::Poll WireLink::poll_connect() {
  // Whatever is queued goes first; then the stage decides what to wait for.
  while (true) {
    if (stage_ == Stage::broken || stage_ == Stage::none) return Poll::failed;
    if (stage_ != Stage::tcp_connect && stage_ != Stage::tls_handshake) {
      const Io wrote = write_out();
      if (wrote == Io::would_block) return Poll::write;
      if (wrote != Io::done) return fail(error_);
    }
    const Poll next = step_connect();
    // A step that queued bytes (an answer to the server) goes round again to send them.
    if (next != Poll::read || out_.empty()) return next;
  }
}

pool::ServerLink::Poll WireLink::step_connect() {
  switch (stage_) {
    case Stage::tcp_connect:
      return after_tcp_connect();
    case Stage::tls_answer:
      return on_tls_answer();
    case Stage::tls_handshake:
      return continue_tls();
    case Stage::authenticating:
      return read_login();
    case Stage::ready:
      return Poll::ok;
    default:
      return Poll::failed;
  }
}

pool::ServerLink::Poll WireLink::after_tcp_connect() {
  int failure = 0;
  socklen_t size = sizeof failure;
  if (::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &failure, &size) != 0) failure = errno;
  if (failure != 0) return fail(std::strerror(failure));
  // No TLS over a Unix socket, as libpq: the kernel carries the bytes.
  if (target_.unix_socket() || target_.sslmode == "disable" || target_.sslmode == "allow") {
    queue_startup();
    return Poll::write;
  }
  wire::append_ssl_request(out_);
  stage_ = Stage::tls_answer;
  return Poll::write;
}

pool::ServerLink::Poll WireLink::on_tls_answer() {
  char answer = 0;
  const ssize_t got = ::recv(fd_, &answer, 1, 0);
  if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return Poll::read;
  if (got <= 0) return fail("server closed the connection unexpectedly");
  if (answer == 'S') return start_tls();
  if (answer != 'N')
    return fail("received invalid response to SSL negotiation: " + std::string(1, answer));
  if (needs_tls(target_)) return fail("server does not support SSL, but SSL was required");
  queue_startup();
  return Poll::write;
}

pool::ServerLink::Poll WireLink::start_tls() {
  tls_context_ = SSL_CTX_new(TLS_client_method());
  if (tls_context_ == nullptr) return fail("SSL_CTX_new: " + openssl_error());
  SSL_CTX_set_min_proto_version(tls_context_, TLS1_2_VERSION);
  if (verifies_chain(target_)) {
    if (SSL_CTX_load_verify_locations(tls_context_, target_.sslrootcert.c_str(), nullptr) != 1) {
      return fail("could not read root certificate file \"" + target_.sslrootcert +
                  "\": " + openssl_error());
    }
    if (!target_.sslcrl.empty()) {
      X509_STORE* store = SSL_CTX_get_cert_store(tls_context_);
      if (X509_STORE_load_file(store, target_.sslcrl.c_str()) != 1) {
        return fail("could not load SSL certificate revocation list \"" + target_.sslcrl +
                    "\": " + openssl_error());
      }
      X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
    }
    SSL_CTX_set_verify(tls_context_, SSL_VERIFY_PEER, nullptr);
  }
  if (!target_.sslcert.empty()) {
    if (SSL_CTX_use_certificate_chain_file(tls_context_, target_.sslcert.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(tls_context_, target_.sslkey.c_str(), SSL_FILETYPE_PEM) != 1) {
      return fail("could not load client certificate \"" + target_.sslcert +
                  "\": " + openssl_error());
    }
  }
  tls_ = SSL_new(tls_context_);
  if (tls_ == nullptr || SSL_set_fd(tls_, fd_) != 1) return fail("SSL_new: " + openssl_error());
  // The relay writes through this object too: partial writes, from buffers that may move.
  SSL_set_mode(tls_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  const bool named = !is_ip_address(target_.host);
  if (named) SSL_set_tlsext_host_name(tls_, target_.host.c_str());
  if (target_.sslmode == "verify-full") {
    // The certificate must name the host as configured: its name, or its address.
    const int set = named
                        ? SSL_set1_host(tls_, target_.host.c_str())
                        : X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(tls_), target_.host.c_str());
    if (set != 1) return fail("could not set the host name to verify: " + openssl_error());
  }
  stage_ = Stage::tls_handshake;
  return continue_tls();
}

pool::ServerLink::Poll WireLink::continue_tls() {
  ERR_clear_error();
  const int result = SSL_connect(tls_);
  if (result == 1) {
    queue_startup();
    return Poll::write;
  }
  const int reason = SSL_get_error(tls_, result);
  if (reason == SSL_ERROR_WANT_READ) return Poll::read;
  if (reason == SSL_ERROR_WANT_WRITE) return Poll::write;
  // OpenSSL records a verify result even when nothing is verified: it only explains a failure
  // when the chain was to be verified.
  const long verified = SSL_get_verify_result(tls_);
  if (verifies_chain(target_) && verified != X509_V_OK) {
    return fail(std::string("SSL error: certificate verify failed: ") +
                X509_verify_cert_error_string(verified));
  }
  return fail("SSL error: " + openssl_error());
}

void WireLink::queue_startup() {
  const wire::StartupParameter parameters[] = {
      {"user", target_.user},
      {"database", target_.dbname},
      {"application_name", target_.application_name},
  };
  wire::append_startup_message(out_, parameters);
  stage_ = Stage::authenticating;
}

pool::ServerLink::Poll WireLink::read_login() {
  const Io read = read_in();
  char type = 0;
  std::span<const char> payload;
  while (stage_ == Stage::authenticating && peek_message(type, payload)) {
    switch (type) {
      case 'R':
        if (auto refused = answer_authentication(payload)) return fail(std::move(*refused));
        break;
      case 'E': {
        const auto error = wire::parse_error_response(payload);
        return fail(error ? std::string(error->severity) + ":  " + std::string(error->message)
                          : "invalid ErrorResponse from server");
      }
      case 'K':
        if (const auto key = wire::parse_backend_key_data(payload)) {
          key_ = Key{key->process_id, key->secret_key};
        }
        break;
      case 'S':
        note_parameter(payload);
        break;
      case 'Z':
        stage_ = Stage::ready;
        break;
      default:  // notices
        break;
    }
    pop_message();
  }
  if (stage_ == Stage::ready) return Poll::ok;
  if (stage_ == Stage::broken) return fail(error_);
  if (read != Io::done) return fail(error_);
  return Poll::read;
}

std::optional<std::string> WireLink::answer_authentication(std::span<const char> payload) {
  if (payload.size() < 4) return "invalid authentication request from server";
  const std::uint32_t code = wire::read_uint32(payload);
  const auto data = payload.subspan(4);
  switch (code) {
    case wire::kAuthOk:
      // A SCRAM exchange, once begun, must end with the server's signature: without it, a
      // server that does not hold the verifier (an impostor) could skip to "ok". A server that
      // asks for nothing (trust) is taken, as libpq takes it.
      if (scram_ && !scram_verified_) return "the server skipped proving it holds the verifier";
      return std::nullopt;
    case wire::kAuthMd5: {
      if (proof_.md5_hash.empty() || data.size() < 4) {
        return "the server asks for md5, and the client logged in to pgvigil otherwise";
      }
      auth::Md5Salt salt{};
      std::copy_n(reinterpret_cast<const std::uint8_t*>(data.data()), salt.size(), salt.begin());
      wire::append_password_message(out_, auth::md5_client_response(proof_.md5_hash, salt));
      return std::nullopt;
    }
    case wire::kAuthSasl: {
      const std::string_view mechanisms(data.data(), data.size());
      // A NUL-separated list: SCRAM-SHA-256 must be one of its names.
      const bool offered = mechanisms.starts_with("SCRAM-SHA-256\0"sv) ||
                           mechanisms.find("\0SCRAM-SHA-256\0"sv) != std::string_view::npos;
      if (!proof_.scram || !offered) {
        return "the server asks for SASL, and the client did not log in to pgvigil with SCRAM";
      }
      scram_ = std::make_unique<auth::ScramClient>(*proof_.scram);
      wire::append_sasl_initial_response(out_, "SCRAM-SHA-256", scram_->client_first());
      return std::nullopt;
    }
    case wire::kAuthSaslContinue: {
      std::string error;
      const auto final_message =
          scram_ ? scram_->client_final({data.data(), data.size()}, error) : std::nullopt;
      if (!final_message) return scram_ ? error : "unexpected SASL continuation";
      wire::append_sasl_response(out_, *final_message);
      return std::nullopt;
    }
    case wire::kAuthSaslFinal: {
      std::string error;
      if (!scram_ || !scram_->verify_server_final({data.data(), data.size()}, error)) {
        return scram_ ? error : "unexpected SASL final message";
      }
      scram_verified_ = true;
      return std::nullopt;
    }
    case wire::kAuthCleartext:
      return "the server asks for a clear-text password, which pgvigil does not have";
    default:
      return "authentication method " + std::to_string(code) + " is not supported";
  }
}

}  // namespace pgvigil::proxy::login
