#pragma once
// The server end of TLS for streams that pgvigil accepts (clients): the OpenSSL context made from
// certificate files, the handshake over an accepted SocketStream, and what the client's
// certificate says. The context is immutable once made and shared by every worker; a reload
// makes a new one (sessions keep the context they were accepted with: OpenSSL counts references).

#include <openssl/types.h>

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "stream/socket_stream.hpp"

namespace pgvigil::stream {

struct ServerTlsFiles {
  std::string cert_file;    // PEM certificate chain the client sees (leaf first)
  std::string key_file;     // its private key (PEM, unencrypted)
  std::string ca_file;      // CA certificates that sign client certificates; "": none asked for
  bool tls13_only = false;  // TLS 1.3 only; else 1.2 or later
};

using ServerTlsContext = std::shared_ptr<SSL_CTX>;

// A context from the files, or an error naming the file at fault and OpenSSL's reason. With a CA
// file, clients are asked for a certificate but not required to send one, and one that fails
// verification does not fail the handshake: the database's rule decides later (client_certificate).
enum class TlsFile : std::uint8_t { cert, key, ca };
struct MadeServerTls {
  ServerTlsContext context;
  std::string error;               // non-empty when context is null
  TlsFile failed = TlsFile::cert;  // the file the error is about
};
MadeServerTls make_server_tls(const ServerTlsFiles& files);

// Runs the server side of the handshake on `stream`, a plain stream whose peer asked for TLS and
// was answered 'S' (nothing of the peer's was read past its request). The stream is TLS
// afterwards, or ec says why not (the TLS object is freed then).
boost::asio::awaitable<void> accept_tls(SocketStream& stream, const ServerTlsContext& context,
                                        boost::system::error_code& ec, std::string& failure);

// What the peer's certificate on a TLS stream says.
struct ClientCertificate {
  bool presented = false;
  bool verified = false;     // it chains to the CA file (and is in its validity period)
  std::string verify_error;  // OpenSSL's reason when presented but not verified
  std::string common_name;   // the subject's CN ("" when none)
};
ClientCertificate client_certificate(const SocketStream& stream);

// SCRAM's tls-server-end-point channel binding data (RFC 5929): the hash of the certificate this
// side showed on the TLS stream, with its signature's digest (SHA-256 for MD5 and SHA-1). Empty
// in the clear, or for a certificate whose signature has no single digest (Ed25519).
std::vector<unsigned char> tls_server_end_point(const SocketStream& stream);

}  // namespace pgvigil::stream
