#include "proxy/auth/scram_server.hpp"

#include <algorithm>

#include "proxy/auth/base64.hpp"

namespace pgvigil::proxy::auth {
namespace {

constexpr std::size_t kServerNonceBytes = 18;  // PostgreSQL's SCRAM_RAW_NONCE_LEN

// Splits off the attribute "x=value" at the front of `text` (up to the next ',').
// Returns false when `text` does not start with `name` followed by '='.
bool take_attribute(std::string_view& text, char name, std::string_view& value) {
  if (text.size() < 2 || text[0] != name || text[1] != '=') return false;
  const std::size_t comma = text.find(',');
  value = text.substr(2, comma == std::string_view::npos ? std::string_view::npos : comma - 2);
  text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
  return true;
}

// RFC 5802: printable ASCII except ','.
bool is_valid_nonce(std::string_view nonce) {
  return !nonce.empty() && std::all_of(nonce.begin(), nonce.end(),
                                       [](char c) { return c >= 0x21 && c <= 0x7e && c != ','; });
}

}  // namespace

ScramServer::ScramServer(ScramVerifier verifier, std::string server_nonce)
    : verifier_(std::move(verifier)), server_nonce_(std::move(server_nonce)) {
  if (server_nonce_.empty()) server_nonce_ = base64_encode(random_bytes(kServerNonceBytes));
}

ScramServer ScramServer::for_unknown_user(std::string_view user, const NameSalts& salts) {
  ScramVerifier verifier;
  verifier.iterations = salts.iterations;
  // The salt a listed user with a plain password gets too (users_file.cpp).
  verifier.salt = name_salt(salts, user);
  const Bytes keys = random_bytes(64);
  std::copy_n(keys.begin(), 32, verifier.stored_key.begin());
  std::copy_n(keys.begin() + 32, 32, verifier.server_key.begin());
  ScramServer server(std::move(verifier));
  server.mock_ = true;
  return server;
}

ScramStep ScramServer::step(std::string_view client_message) {
  // A NUL cannot occur in any SCRAM message and would confuse C-string consumers downstream.
  if (client_message.find('\0') != std::string_view::npos) {
    return fail(ScramFailure::protocol_violation, "SCRAM message contains a NUL byte");
  }
  switch (state_) {
    case State::expect_client_first:
      return handle_client_first(client_message);
    case State::expect_client_final:
      return handle_client_final(client_message);
    case State::succeeded:
    case State::failed:
      break;
  }
  return fail(ScramFailure::protocol_violation, "SCRAM exchange is already over");
}

ScramStep ScramServer::fail(ScramFailure failure, std::string reason) {
  state_ = State::failed;
  return ScramStep{ScramStep::Outcome::failed, {}, failure, std::move(reason)};
}

ScramStep ScramServer::handle_client_first(std::string_view message) {
  // gs2-header: cbind-flag "," [authzid] ","; cbind-flag: "n", "y" or "p=<type>".
  const std::size_t flag_end = message.find(',');
  if (flag_end == std::string_view::npos) {
    return fail(ScramFailure::protocol_violation, "malformed SCRAM gs2 header");
  }
  const std::string_view flag = message.substr(0, flag_end);
  if (flag.starts_with("p=")) {
    if (channel_binding_.empty()) {
      return fail(ScramFailure::protocol_violation, "channel binding is not supported");
    }
    if (flag.substr(2) != kTlsServerEndPoint) {
      return fail(ScramFailure::protocol_violation, "unsupported SCRAM channel binding type");
    }
    if (!plus_) {
      return fail(ScramFailure::protocol_violation,
                  "SCRAM channel binding requested with a mechanism that does not bind");
    }
    bound_ = true;
  } else if (flag == "n" || flag == "y") {
    if (plus_) {
      return fail(ScramFailure::protocol_violation,
                  "SCRAM-SHA-256-PLUS chosen without channel binding");
    }
    // The client could bind but believes this server cannot, though it offered to: someone
    // between them removed -PLUS from the offer.
    if (flag == "y" && !channel_binding_.empty()) {
      return fail(ScramFailure::protocol_violation,
                  "SCRAM channel binding downgrade: the client supports it and so does pgvigil");
    }
  } else {
    return fail(ScramFailure::protocol_violation, "malformed SCRAM gs2 header");
  }
  if (message.size() < flag_end + 2 || message[flag_end + 1] != ',') {
    // PostgreSQL refuses an authorisation identity too: the startup user is the only identity.
    return fail(ScramFailure::protocol_violation, "SCRAM authorization identity is not supported");
  }
  gs2_header_ = message.substr(0, flag_end + 2);
  std::string_view bare = message.substr(flag_end + 2);
  client_first_bare_ = bare;

  if (bare.starts_with("m=")) {
    return fail(ScramFailure::protocol_violation, "SCRAM mandatory extensions are not supported");
  }
  std::string_view user;
  std::string_view client_nonce;
  if (!take_attribute(bare, 'n', user)) {
    return fail(ScramFailure::protocol_violation, "SCRAM client-first-message lacks n=");
  }
  if (!take_attribute(bare, 'r', client_nonce) || !is_valid_nonce(client_nonce)) {
    return fail(ScramFailure::protocol_violation, "SCRAM client-first-message lacks a valid r=");
  }
  // Optional extensions may follow; RFC 5802 says to ignore unknown ones, as PostgreSQL does.

  combined_nonce_ = std::string(client_nonce) + server_nonce_;
  server_first_ = "r=" + combined_nonce_ + ",s=" + base64_encode(verifier_.salt) +
                  ",i=" + std::to_string(verifier_.iterations);
  state_ = State::expect_client_final;
  return ScramStep{ScramStep::Outcome::send_continue, server_first_, ScramFailure::none, {}};
}

ScramStep ScramServer::handle_client_final(std::string_view message) {
  // client-final-message: c=<b64 gs2 header>,r=<nonce>[,extensions],p=<b64 proof>
  const std::size_t proof_at = message.rfind(",p=");
  if (proof_at == std::string_view::npos) {
    return fail(ScramFailure::protocol_violation, "SCRAM client-final-message lacks p=");
  }
  const std::string_view without_proof = message.substr(0, proof_at);
  const std::string_view proof_text = message.substr(proof_at + 3);

  std::string_view rest = without_proof;
  std::string_view binding;
  std::string_view nonce;
  if (!take_attribute(rest, 'c', binding)) {
    return fail(ScramFailure::protocol_violation, "SCRAM client-final-message lacks c=");
  }
  // c= carries the gs2 header from the first message, then, when bound, the hash of the
  // certificate this session showed: a client that saw another certificate cannot match it.
  Bytes expected(gs2_header_.begin(), gs2_header_.end());
  if (bound_) expected.insert(expected.end(), channel_binding_.begin(), channel_binding_.end());
  const std::optional<Bytes> binding_bytes = base64_decode(binding);
  if (!binding_bytes || *binding_bytes != expected) {
    return fail(ScramFailure::protocol_violation, "SCRAM channel binding data does not match");
  }
  if (!take_attribute(rest, 'r', nonce) || nonce != combined_nonce_) {
    return fail(ScramFailure::protocol_violation, "SCRAM nonce does not match");
  }
  const std::optional<Bytes> proof = base64_decode(proof_text);
  if (!proof || proof->size() != verifier_.stored_key.size()) {
    return fail(ScramFailure::protocol_violation, "malformed SCRAM proof");
  }

  const std::string auth_message =
      client_first_bare_ + "," + server_first_ + "," + std::string(without_proof);
  const Sha256Digest client_signature = hmac_sha256(verifier_.stored_key, as_bytes(auth_message));
  Sha256Digest client_key{};
  for (std::size_t i = 0; i < client_key.size(); ++i)
    client_key[i] = (*proof)[i] ^ client_signature[i];
  const bool proof_ok = constant_time_equal(sha256(client_key), verifier_.stored_key);
  if (!proof_ok || mock_) {
    return fail(ScramFailure::invalid_password, "SCRAM proof does not match");
  }

  state_ = State::succeeded;
  client_key_ = client_key;
  const Sha256Digest server_signature = hmac_sha256(verifier_.server_key, as_bytes(auth_message));
  return ScramStep{ScramStep::Outcome::send_final,
                   "v=" + base64_encode(server_signature),
                   ScramFailure::none,
                   {}};
}

}  // namespace pgvigil::proxy::auth
