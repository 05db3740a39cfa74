// SCRAM-SHA-256 client from keys (what a per-user pool logs in to the server with): against
// pgvigil's own SCRAM server holding the same verifier, the ClientKey one login revealed proves
// the next login, the server's signature is checked with the verifier's ServerKey, and wrong
// keys, a forged signature, a refusal and a nonce the server did not extend all fail.

#include "proxy/auth/scram_client.hpp"

#include <gtest/gtest.h>

#include "proxy/auth/scram_server.hpp"
#include "proxy/auth/scram_verifier.hpp"

namespace pgvigil::proxy::auth {
namespace {

using Outcome = ScramStep::Outcome;

const Bytes kScramSalt = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

// ClientKey as RFC 5802 defines it: HMAC(Hi(password, salt, i), "Client Key").
Sha256Digest client_key_of(std::string_view password) {
  const Sha256Digest salted = pbkdf2_sha256(password, kScramSalt, 4096);
  return hmac_sha256(salted, as_bytes("Client Key"));
}

// One exchange of `client` against a server with `verifier`: the server's last step, and what
// the client made of the server's final message (empty when it accepted it).
struct Exchange {
  ScramStep server_final;
  std::string client_error;
  Sha256Digest revealed_key{};
};

Exchange run(ScramClient& client, const ScramVerifier& verifier) {
  ScramServer server(verifier);
  Exchange exchange;
  const ScramStep first = server.step(client.client_first());
  EXPECT_EQ(first.outcome, Outcome::send_continue) << first.reason;
  std::string error;
  const auto final_message = client.client_final(first.message, error);
  EXPECT_TRUE(final_message.has_value()) << error;
  exchange.server_final = server.step(final_message.value_or(""));
  if (exchange.server_final.outcome == Outcome::send_final &&
      !client.verify_server_final(exchange.server_final.message, error)) {
    exchange.client_error = error;
  }
  if (server.state() == ScramServer::State::succeeded) exchange.revealed_key = server.client_key();
  return exchange;
}

TEST(ScramClient, ProvesWithTheKeysAnEarlierLoginRevealed) {
  const ScramVerifier verifier = derive_scram_verifier("pw-alice", kScramSalt, 4096);
  ScramClient client(ScramKeys{client_key_of("pw-alice"), verifier.server_key});
  const Exchange exchange = run(client, verifier);
  EXPECT_EQ(exchange.server_final.outcome, Outcome::send_final) << exchange.server_final.reason;
  EXPECT_EQ(exchange.client_error, "") << "the server's signature is checked and right";
  EXPECT_EQ(exchange.revealed_key, client_key_of("pw-alice"))
      << "the server side reveals the same key, which the next login can use";

  // The revealed key alone, with a fresh nonce, logs in again.
  ScramClient again(ScramKeys{exchange.revealed_key, verifier.server_key});
  EXPECT_EQ(run(again, verifier).server_final.outcome, Outcome::send_final);
}

TEST(ScramClient, AnotherPasswordsKeyIsRefused) {
  const ScramVerifier verifier = derive_scram_verifier("pw-alice", kScramSalt, 4096);
  ScramClient client(ScramKeys{client_key_of("old-password"), verifier.server_key});
  const Exchange exchange = run(client, verifier);
  EXPECT_EQ(exchange.server_final.outcome, Outcome::failed);
  EXPECT_EQ(exchange.server_final.failure, ScramFailure::invalid_password);
}

TEST(ScramClient, AServerWithoutTheVerifierIsCaught) {
  const ScramVerifier verifier = derive_scram_verifier("pw-alice", kScramSalt, 4096);
  Sha256Digest wrong_server_key = verifier.server_key;
  wrong_server_key[0] ^= 1;
  ScramClient client(ScramKeys{client_key_of("pw-alice"), wrong_server_key});
  const Exchange exchange = run(client, verifier);
  EXPECT_EQ(exchange.client_error, "the server's SCRAM signature is wrong");

  std::string error;
  EXPECT_FALSE(client.verify_server_final("e=invalid-proof", error));
  EXPECT_EQ(error, "the server refused the SCRAM exchange: invalid-proof");
  EXPECT_FALSE(client.verify_server_final("", error));
  ScramClient before_final(ScramKeys{client_key_of("pw-alice"), verifier.server_key});
  EXPECT_FALSE(before_final.verify_server_final("v=AAAA", error)) << "no exchange ran yet";
}

TEST(ScramClient, RefusesAServerFirstMessageThatDoesNotExtendItsNonce) {
  ScramClient client(ScramKeys{}, "clientnonce");
  EXPECT_EQ(client.client_first(), "n,,n=,r=clientnonce");
  std::string error;
  EXPECT_FALSE(client.client_final("r=othernonce123,s=AQID,i=4096", error));
  EXPECT_EQ(error, "the server's SCRAM nonce does not extend ours");
  EXPECT_FALSE(client.client_final("r=clientnonce,s=AQID,i=4096", error)) << "not extended";
  EXPECT_FALSE(client.client_final("r=clientnonce123", error));
  EXPECT_EQ(error, "the server's SCRAM message has no salt or iteration count");
  EXPECT_TRUE(client.client_final("r=clientnonce123,s=AQID,i=4096", error));
}

}  // namespace
}  // namespace pgvigil::proxy::auth
