#include "stream/server_tls.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509err.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>

namespace pgvigil::stream {
namespace asio = boost::asio;
using boost::system::error_code;

namespace {

// OpenSSL's last reason, drained from its error queue.
std::string openssl_reason() {
  std::string reason;
  while (const unsigned long code = ERR_get_error()) {
    char text[256];
    ERR_error_string_n(code, text, sizeof text);
    if (!reason.empty()) reason += "; ";
    reason += text;
  }
  return reason.empty() ? "unknown OpenSSL error" : reason;
}

// Every client certificate is looked at after the handshake (client_certificate): a bad one must
// not end the handshake, since the database it asks for may not need one at all, and the client
// deserves a PostgreSQL error that says what was wrong rather than a TLS alert.
int accept_any_certificate(int, X509_STORE_CTX*) { return 1; }

}  // namespace

MadeServerTls make_server_tls(const ServerTlsFiles& files) {
  ERR_clear_error();
  ServerTlsContext context(SSL_CTX_new(TLS_server_method()), SSL_CTX_free);
  if (!context) return {nullptr, "cannot make a TLS context: " + openssl_reason(), TlsFile::cert};
  SSL_CTX* ctx = context.get();
  SSL_CTX_set_min_proto_version(ctx, files.tls13_only ? TLS1_3_VERSION : TLS1_2_VERSION);
  // As PostgreSQL does: no session cache, no tickets (sessions are long; resumption would only
  // widen what a stolen ticket can do), no renegotiation, the server's cipher order.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION |
                               SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
  // The relay writes what it can and goes on from there, from another buffer address.
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (SSL_CTX_use_certificate_chain_file(ctx, files.cert_file.c_str()) != 1) {
    return {nullptr, "cannot load certificate " + files.cert_file + ": " + openssl_reason(),
            TlsFile::cert};
  }
  const bool key_loaded =
      SSL_CTX_use_PrivateKey_file(ctx, files.key_file.c_str(), SSL_FILETYPE_PEM) == 1;
  if (!key_loaded && ERR_GET_REASON(ERR_peek_last_error()) != X509_R_KEY_VALUES_MISMATCH) {
    return {nullptr, "cannot load private key " + files.key_file + ": " + openssl_reason(),
            TlsFile::key};
  }
  if (!key_loaded || SSL_CTX_check_private_key(ctx) != 1) {
    ERR_clear_error();
    return {nullptr,
            "private key " + files.key_file + " does not match certificate " + files.cert_file,
            TlsFile::key};
  }
  if (!files.ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, files.ca_file.c_str(), nullptr) != 1) {
      return {nullptr, "cannot load CA certificates " + files.ca_file + ": " + openssl_reason(),
              TlsFile::ca};
    }
    // The CA names sent with the certificate request let a client pick the right certificate.
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(files.ca_file.c_str());
    if (names == nullptr) {
      return {nullptr, "no CA certificate in " + files.ca_file + ": " + openssl_reason(),
              TlsFile::ca};
    }
    SSL_CTX_set_client_CA_list(ctx, names);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE, accept_any_certificate);
  }
  return {std::move(context), {}, TlsFile::cert};
}

asio::awaitable<void> accept_tls(SocketStream& stream, const ServerTlsContext& context,
                                 error_code& ec, std::string& failure) {
  ec.clear();
  ERR_clear_error();
  SSL* tls = SSL_new(context.get());
  if (tls == nullptr || SSL_set_fd(tls, stream.native_handle()) != 1) {
    if (tls != nullptr) SSL_free(tls);
    failure = openssl_reason();
    ec = asio::error::no_memory;
    co_return;
  }
  SSL_set_accept_state(tls);
  while (true) {
    ERR_clear_error();
    errno = 0;
    const int result = SSL_do_handshake(tls);
    if (result == 1) break;
    const int error = SSL_get_error(tls, result);
    if (error != SSL_ERROR_WANT_READ && error != SSL_ERROR_WANT_WRITE) {
      failure = error == SSL_ERROR_SYSCALL && ERR_peek_error() == 0
                    ? "the client closed the connection during the TLS handshake"
                    : openssl_reason();
      SSL_free(tls);
      ec = asio::error::connection_aborted;
      co_return;
    }
    auto [wait_ec] = co_await stream.async_wait(
        error == SSL_ERROR_WANT_READ ? SocketStream::Ready::read : SocketStream::Ready::write,
        asio::as_tuple(asio::use_awaitable));
    if (wait_ec) {
      SSL_free(tls);
      failure = "the TLS handshake was interrupted";
      ec = wait_ec;
      co_return;
    }
  }
  stream.start_tls(tls);
}

ClientCertificate client_certificate(const SocketStream& stream) {
  ClientCertificate found;
  SSL* tls = stream.tls_object();
  if (tls == nullptr) return found;
  X509* peer = SSL_get1_peer_certificate(tls);
  if (peer == nullptr) return found;
  found.presented = true;
  const long verify = SSL_get_verify_result(tls);
  found.verified = verify == X509_V_OK;
  if (!found.verified) found.verify_error = X509_verify_cert_error_string(verify);
  X509_NAME* subject = X509_get_subject_name(peer);
  const int index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (index >= 0) {
    const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index));
    unsigned char* utf8 = nullptr;
    const int length = ASN1_STRING_to_UTF8(&utf8, data);
    if (length >= 0) {
      std::string name(reinterpret_cast<const char*>(utf8), static_cast<std::size_t>(length));
      // A name with an embedded NUL could pass for a shorter one: none is accepted.
      if (name.find('\0') == std::string::npos) found.common_name = std::move(name);
      OPENSSL_free(utf8);
    }
  }
  X509_free(peer);
  return found;
}

std::vector<unsigned char> tls_server_end_point(const SocketStream& stream) {
  SSL* tls = stream.tls_object();
  X509* own = tls != nullptr ? SSL_get_certificate(tls) : nullptr;
  if (own == nullptr) return {};
  int digest_nid = NID_undef;
  int key_nid = NID_undef;
  if (OBJ_find_sigid_algs(X509_get_signature_nid(own), &digest_nid, &key_nid) != 1) return {};
  const EVP_MD* digest = digest_nid == NID_md5 || digest_nid == NID_sha1
                             ? EVP_sha256()
                             : EVP_get_digestbynid(digest_nid);
  if (digest == nullptr) return {};
  unsigned char hash[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (X509_digest(own, digest, hash, &length) != 1) return {};
  return std::vector<unsigned char>(hash, hash + length);
}

}  // namespace pgvigil::stream
