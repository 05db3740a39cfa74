#pragma once
// Server side of SCRAM-SHA-256 (RFC 5802, RFC 7677) the way PostgreSQL runs it: the user name
// comes from the StartupMessage (the one in client-first is ignored), no authorisation
// identity. Over TLS, SCRAM-SHA-256-PLUS binds the exchange to the TLS session with
// tls-server-end-point (RFC 5929: a hash of the server's certificate), so a man in the middle
// that terminates TLS with another certificate cannot relay the proof. Without it offered, a
// client that sends "y,," (it could bind but thinks we cannot) is accepted; with it offered, that
// is a downgrade and is refused.
//
// Flow: SASLInitialResponse data -> step() -> SASLContinue(message);
//       SASLResponse data -> step() -> SASLFinal(message) then AuthenticationOk, or an error.

#include <string>
#include <string_view>

#include "proxy/auth/scram_verifier.hpp"

namespace pgvigil::proxy::auth {

inline constexpr std::string_view kScramSha256 = "SCRAM-SHA-256";
inline constexpr std::string_view kScramSha256Plus = "SCRAM-SHA-256-PLUS";
inline constexpr std::string_view kTlsServerEndPoint = "tls-server-end-point";

enum class ScramFailure {
  none,
  protocol_violation,  // malformed or unsupported message: SQLSTATE 08P01
  invalid_password,    // well-formed but the proof is wrong: SQLSTATE 28P01
};

struct ScramStep {
  enum class Outcome {
    send_continue,  // send AuthenticationSASLContinue(message), then wait for SASLResponse
    send_final,     // send AuthenticationSASLFinal(message), then AuthenticationOk
    failed,         // send ErrorResponse; `reason` is for the log, never for the client
  };
  Outcome outcome = Outcome::failed;
  std::string message;
  ScramFailure failure = ScramFailure::none;
  std::string reason;
};

class ScramServer {
 public:
  enum class State { expect_client_first, expect_client_final, succeeded, failed };

  // server_nonce empty: 18 random bytes in base64, as PostgreSQL makes it. Tests inject one.
  explicit ScramServer(ScramVerifier verifier, std::string server_nonce = {});

  // For a user with no entry: the exchange runs with a salt derived from the name (stable per
  // name within this process) and always fails at the proof, so a client cannot probe which
  // user names exist.
  static ScramServer for_unknown_user(std::string_view user,
                                      const NameSalts& salts = process_name_salts());

  // Offers channel binding: `server_end_point` is the hash of the certificate this TLS session
  // showed (tls-server-end-point). Before the first step.
  void offer_channel_binding(Bytes server_end_point) {
    channel_binding_ = std::move(server_end_point);
  }
  // The mechanism the client chose in its SASLInitialResponse: -PLUS must bind, the other not.
  void set_client_mechanism(std::string_view mechanism) { plus_ = mechanism == kScramSha256Plus; }

  // Feeds the next client message (client-first, then client-final).
  ScramStep step(std::string_view client_message);

  State state() const { return state_; }
  const ScramVerifier& verifier() const { return verifier_; }
  // Once succeeded: the ClientKey the proof revealed. With the verifier's ServerKey it is what
  // pgvigil needs to log in to the server as this user (ScramClient): a per-user pool keeps it
  // in memory for its server logins (never on disk, never logged).
  const Sha256Digest& client_key() const { return client_key_; }

 private:
  ScramStep handle_client_first(std::string_view message);
  ScramStep handle_client_final(std::string_view message);
  ScramStep fail(ScramFailure failure, std::string reason);

  ScramVerifier verifier_;
  std::string server_nonce_;
  bool mock_ = false;
  Bytes channel_binding_;  // empty: not offered
  bool plus_ = false;      // the client chose SCRAM-SHA-256-PLUS
  bool bound_ = false;     // its gs2 header asked for tls-server-end-point
  State state_ = State::expect_client_first;
  // Kept from the first round for the proof: gs2 header, client-first-bare, server-first, nonce.
  std::string gs2_header_;
  std::string client_first_bare_;
  std::string server_first_;
  std::string combined_nonce_;
  Sha256Digest client_key_{};
};

}  // namespace pgvigil::proxy::auth
