#include "proxy/authenticator.hpp"

#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include "proxy/auth/md5_auth.hpp"
#include "proxy/auth/scram_server.hpp"
#include "proxy/wire/backend_messages.hpp"
#include "proxy/wire/frontend_parser.hpp"
#include "stream/server_tls.hpp"

namespace pgvigil::proxy {
namespace asio = boost::asio;
using Outcome = std::optional<ClientError>;

namespace {

ClientError password_failed(const std::string& user) {
  return {sqlstate::kInvalidPassword, "password authentication failed for user \"" + user + "\"",
          "", ""};
}

// Sends `bytes`, then reads the client's password-type ('p') answer.
asio::awaitable<std::variant<std::string, ClientError>> exchange(stream::SocketStream& stream,
                                                                 FrameReader& reader,
                                                                 const std::string& bytes) {
  boost::system::error_code ec;
  co_await stream.write_all(bytes, ec);
  if (ec) co_return ClientError{"", "client went away", "", ""};
  auto frame = co_await reader.next();
  if (auto* error = std::get_if<ClientError>(&frame)) co_return *error;
  auto& answer = std::get<OwnedFrame>(frame);
  if (answer.type != 'p') {
    co_return ClientError{sqlstate::kProtocolViolation,
                          std::string("expected a password message, got message type '") +
                              answer.type + "'",
                          "", ""};
  }
  co_return std::move(answer.payload);
}

// The user's secret, wherever it was found (null: nowhere), and the salts an unknown name is
// shown by the source that was asked last, so that a name is always shown the same salt.
struct FoundSecret {
  const auth::UserEntry* entry = nullptr;
  std::shared_ptr<const auth::UserEntry> looked_up;  // keeps a looked-up entry alive
  const auth::NameSalts* salts = &auth::process_name_salts();
};

asio::awaitable<std::variant<FoundSecret, ClientError>> find_secret(const std::string& user,
                                                                    const SecretSources& secrets) {
  FoundSecret found;
  if (secrets.users != nullptr) {
    found.entry = secrets.users->find(user);
    found.salts = &secrets.users->name_salts();
  }
  if (found.entry != nullptr || secrets.lookup == nullptr) co_return found;
  auto outcome = co_await secrets.lookup->find(user);
  if (auto* failure = std::get_if<auth::LookupFailure>(&outcome)) {
    spdlog::warn("could not look up user \"{}\" on the server: {}", user, failure->detail);
    co_return ClientError{sqlstate::kConnectionFailure,
                          "pgvigil could not look up user \"" + user + "\" on the server", "",
                          "pgvigil's log says why (auth.query)."};
  }
  found.looked_up = std::get<std::shared_ptr<const auth::UserEntry>>(std::move(outcome));
  found.entry = found.looked_up.get();
  found.salts = &secrets.lookup->name_salts();
  co_return found;
}

asio::awaitable<Outcome> authenticate_md5(stream::SocketStream& stream, FrameReader& reader,
                                          const std::string& user, const FoundSecret& found,
                                          auth::LoginProof& proof) {
  auth::Md5Salt salt;
  RAND_bytes(salt.data(), static_cast<int>(salt.size()));
  std::string request;
  wire::append_authentication_md5_password(request, salt);
  auto answer = co_await exchange(stream, reader, request);
  if (auto* error = std::get_if<ClientError>(&answer)) co_return *error;
  const auto& payload = std::get<std::string>(answer);
  const auto response = wire::parse_password_message(payload);
  if (!response) {
    co_return ClientError{sqlstate::kProtocolViolation, "malformed password message", "", ""};
  }
  const auto* entry = found.entry;
  // A SCRAM verifier cannot answer an md5 challenge, as in PostgreSQL.
  if (entry == nullptr || entry->kind == auth::SecretKind::scram_sha_256 ||
      !auth::md5_verify(user, entry->secret, salt, *response)) {
    co_return password_failed(user);
  }
  if (entry->kind == auth::SecretKind::md5) proof.md5_hash = entry->secret;
  co_return std::nullopt;
}

asio::awaitable<Outcome> authenticate_scram(stream::SocketStream& stream, FrameReader& reader,
                                            const std::string& user, const FoundSecret& found,
                                            auth::LoginProof& proof, std::string& greeting) {
  // Known or not, the client sees the same exchange: a salt stable per name, the same work
  // (verifiers are made when the users file is read), a failure only at the proof.
  const auto* entry = found.entry;
  std::optional<auth::ScramServer> server;
  if (entry != nullptr && entry->scram) server.emplace(*entry->scram);
  if (!server) server.emplace(auth::ScramServer::for_unknown_user(user, *found.salts));
  // Over TLS, -PLUS is offered too (first: libpq takes it with channel_binding=prefer).
  const auto end_point = stream::tls_server_end_point(stream);
  if (!end_point.empty()) server->offer_channel_binding(auth::Bytes(end_point.begin(), end_point.end()));

  std::string request;
  const std::string_view with_binding[] = {auth::kScramSha256Plus, auth::kScramSha256};
  const std::string_view without_binding[] = {auth::kScramSha256};
  if (end_point.empty()) {
    wire::append_authentication_sasl(request, without_binding);
  } else {
    wire::append_authentication_sasl(request, with_binding);
  }
  auto first = co_await exchange(stream, reader, request);
  if (auto* error = std::get_if<ClientError>(&first)) co_return *error;
  const auto initial = wire::parse_sasl_initial_response(std::get<std::string>(first));
  const bool known_mechanism =
      initial && (initial->mechanism == auth::kScramSha256 ||
                  (initial->mechanism == auth::kScramSha256Plus && !end_point.empty()));
  if (!known_mechanism) {
    co_return ClientError{sqlstate::kProtocolViolation,
                          "expected a SASL initial response for SCRAM-SHA-256", "", ""};
  }
  server->set_client_mechanism(initial->mechanism);
  // Feed each client message to the SCRAM state machine until it succeeds or fails.
  auto step = server->step(initial->data);
  while (step.outcome == auth::ScramStep::Outcome::send_continue) {
    request.clear();
    wire::append_authentication_sasl_continue(request, step.message);
    auto next = co_await exchange(stream, reader, request);
    if (auto* error = std::get_if<ClientError>(&next)) co_return *error;
    step = server->step(wire::parse_sasl_response(std::get<std::string>(next)));
  }
  if (step.outcome == auth::ScramStep::Outcome::failed) {
    if (step.failure == auth::ScramFailure::protocol_violation) {
      co_return ClientError{sqlstate::kProtocolViolation, "malformed SCRAM message", "", ""};
    }
    co_return password_failed(user);
  }
  // A verifier of the server's own reveals keys the server accepts; one derived from a plain
  // password here does not (its salt is pgvigil's), and that password serves instead.
  if (entry->kind == auth::SecretKind::scram_sha_256) {
    proof.scram = auth::ScramKeys{server->client_key(), entry->scram->server_key};
  }
  wire::append_authentication_sasl_final(greeting, step.message);
  co_return std::nullopt;
}

}  // namespace

asio::awaitable<Outcome> authenticate(stream::SocketStream& stream, FrameReader& reader,
                                      AuthMethod method, const std::string& user,
                                      const SecretSources& secrets, auth::LoginProof& proof,
                                      std::string& greeting) {
  if (method != AuthMethod::trust) {
    if (secrets.users == nullptr && secrets.lookup == nullptr) co_return password_failed(user);
    auto secret = co_await find_secret(user, secrets);
    if (auto* error = std::get_if<ClientError>(&secret)) co_return *error;
    const auto& found = std::get<FoundSecret>(secret);
    // Two statements, not one conditional expression: GCC 12 miscompiles co_await inside ?:.
    Outcome failure;
    if (method == AuthMethod::md5) {
      failure = co_await authenticate_md5(stream, reader, user, found, proof);
    } else {
      failure = co_await authenticate_scram(stream, reader, user, found, proof, greeting);
    }
    if (failure) co_return failure;
  }
  wire::append_authentication_ok(greeting);
  co_return std::nullopt;
}

}  // namespace pgvigil::proxy
