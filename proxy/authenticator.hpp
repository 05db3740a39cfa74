#pragma once
// Authenticates a client by the database's method against the users file, or against the
// secret auth.query finds on the server for users the file does not list: trust, md5 or
// SCRAM-SHA-256 (PostgreSQL's default). On success the messages that say so (SCRAM's final
// message, AuthenticationOk) are left to the caller to send with its startup reply, in one write
// as PgBouncer and PostgreSQL send them: a separate AuthenticationOk wakes the client twice per
// connection. A failure is always "password authentication failed for user": the client learns
// nothing about which users exist.

#include <boost/asio/awaitable.hpp>
#include <optional>
#include <string>

#include "proxy/auth/login_proof.hpp"
#include "proxy/auth/secret_lookup.hpp"
#include "proxy/auth/users_file.hpp"
#include "proxy/client_error.hpp"
#include "proxy/frame_reader.hpp"
#include "proxy/proxy_settings.hpp"

namespace pgvigil::proxy {

// Where clients' secrets come from: the users file first, then auth.query. Both may be null
// (then only trust lets anyone in).
struct SecretSources {
  const auth::UsersFile* users = nullptr;
  std::shared_ptr<auth::SecretLookup> lookup;
};

// Returns nullopt once the client has authenticated: `greeting` then ends with the messages that
// tell it so (AuthenticationSASLFinal, AuthenticationOk), not sent yet, and `proof` holds what the
// login proved (login_proof.hpp).
boost::asio::awaitable<std::optional<ClientError>> authenticate(
    stream::SocketStream& stream, FrameReader& reader, AuthMethod method, const std::string& user,
    const SecretSources& secrets, auth::LoginProof& proof, std::string& greeting);

}  // namespace pgvigil::proxy
