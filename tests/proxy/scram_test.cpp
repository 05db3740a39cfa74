// SCRAM-SHA-256 server: RFC 7677's exchange, a full exchange against a client computed here
// with OpenSSL directly, and refusals of wrong or malformed client messages.

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <vector>

#include "proxy/auth/base64.hpp"
#include "proxy/auth/scram_server.hpp"
#include "proxy/auth/scram_verifier.hpp"

namespace pgvigil::proxy::auth {
namespace {

using Outcome = ScramStep::Outcome;

// RFC 7677 section 3.
constexpr std::string_view kRfcPassword = "pencil";
constexpr std::string_view kRfcSalt = "W22ZaJ0SNY7soEsUEjb6gQ==";
constexpr std::string_view kRfcServerNonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
constexpr std::string_view kRfcClientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
constexpr std::string_view kRfcServerFirst =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
constexpr std::string_view kRfcClientFinal =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
constexpr std::string_view kRfcServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

ScramVerifier rfc_verifier() {
  return derive_scram_verifier(kRfcPassword, *base64_decode(kRfcSalt), 4096);
}

// --- A SCRAM client written here from the RFC with raw OpenSSL calls, independent of the
// library's helpers, so a shared mistake cannot make both sides agree.

using Key = std::array<unsigned char, 32>;

Key hmac(const Key& key, std::string_view data) {
  Key out{};
  unsigned int size = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data(), &size);
  return out;
}

std::string b64(const unsigned char* data, std::size_t size) {
  std::string text(4 * ((size + 2) / 3) + 1, '\0');
  text.resize(
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(text.data()), data, static_cast<int>(size)));
  return text;
}

// Returns the value of attribute `name` in a comma-separated SCRAM message.
std::string attribute(std::string_view message, char name) {
  const std::string key = std::string(1, name) + "=";
  std::size_t at = message.starts_with(key) ? 0 : message.find("," + key);
  if (at == std::string_view::npos) return {};
  if (at != 0) ++at;
  const std::size_t end = message.find(',', at);
  return std::string(message.substr(at + 2, end == std::string_view::npos ? end : end - at - 2));
}

struct TestClient {
  explicit TestClient(std::string password_in, std::string gs2_header_in = "n,,")
      : password(std::move(password_in)), gs2_header(std::move(gs2_header_in)) {}

  std::string password;
  std::string gs2_header;
  std::string client_first_bare = "n=,r=fyko+d2lbbFgONRv9qkxdawL";
  std::string cbind_data;  // what follows the gs2 header in c= (channel binding)
  Key server_key_seen{};
  std::string auth_message;

  std::string first() const { return gs2_header + client_first_bare; }

  std::string final_for(std::string_view server_first) {
    const std::string salt_b64 = attribute(server_first, 's');
    std::vector<unsigned char> salt(salt_b64.size());
    int salt_size =
        EVP_DecodeBlock(salt.data(), reinterpret_cast<const unsigned char*>(salt_b64.data()),
                        static_cast<int>(salt_b64.size()));
    salt_size -= static_cast<int>(std::count(salt_b64.begin(), salt_b64.end(), '='));
    const int iterations = std::stoi(attribute(server_first, 'i'));
    Key salted{};
    PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()), salt.data(), salt_size,
                      iterations, EVP_sha256(), 32, salted.data());
    const Key client_key = hmac(salted, "Client Key");
    Key stored_key{};
    unsigned int size = 0;
    EVP_Digest(client_key.data(), client_key.size(), stored_key.data(), &size, EVP_sha256(),
               nullptr);
    server_key_seen = hmac(salted, "Server Key");

    const std::string binding = gs2_header + cbind_data;
    const std::string without_proof =
        "c=" + b64(reinterpret_cast<const unsigned char*>(binding.data()), binding.size()) +
        ",r=" + attribute(server_first, 'r');
    auth_message = client_first_bare + "," + std::string(server_first) + "," + without_proof;
    const Key signature = hmac(stored_key, auth_message);
    Key proof{};
    for (std::size_t i = 0; i < proof.size(); ++i) proof[i] = client_key[i] ^ signature[i];
    return without_proof + ",p=" + b64(proof.data(), proof.size());
  }

  std::string expected_server_final() const {
    const Key signature = hmac(server_key_seen, auth_message);
    return "v=" + b64(signature.data(), signature.size());
  }
};

// ---

TEST(ScramServer, Rfc7677Exchange) {
  ScramServer server(rfc_verifier(), std::string(kRfcServerNonce));
  const ScramStep first = server.step(kRfcClientFirst);
  ASSERT_EQ(first.outcome, Outcome::send_continue) << first.reason;
  EXPECT_EQ(first.message, kRfcServerFirst);
  const ScramStep final = server.step(kRfcClientFinal);
  ASSERT_EQ(final.outcome, Outcome::send_final) << final.reason;
  EXPECT_EQ(final.message, kRfcServerFinal);
  EXPECT_EQ(server.state(), ScramServer::State::succeeded);
}

TEST(ScramServer, FullExchangeWithRandomNonceAndStoredVerifier) {
  // The verifier goes through PostgreSQL's text form, as it would from the users file.
  const std::string stored = format_scram_verifier(derive_scram_verifier("correct horse"));
  const auto verifier = parse_scram_verifier(stored);
  ASSERT_TRUE(verifier) << verifier.error();
  ScramServer server(*verifier);
  TestClient client{"correct horse"};
  const ScramStep first = server.step(client.first());
  ASSERT_EQ(first.outcome, Outcome::send_continue) << first.reason;
  EXPECT_TRUE(first.message.starts_with("r=fyko+d2lbbFgONRv9qkxdawL"));
  EXPECT_EQ(attribute(first.message, 'r').size(), 24u + 24u);  // + 18 random bytes in base64
  const ScramStep final = server.step(client.final_for(first.message));
  ASSERT_EQ(final.outcome, Outcome::send_final) << final.reason;
  EXPECT_EQ(final.message, client.expected_server_final());
}

TEST(ScramServer, AcceptsClientThatCouldBindButWasNotOffered) {
  ScramServer server(derive_scram_verifier("pw"));
  TestClient client{"pw", "y,,"};
  const ScramStep first = server.step(client.first());
  ASSERT_EQ(first.outcome, Outcome::send_continue) << first.reason;
  EXPECT_EQ(server.step(client.final_for(first.message)).outcome, Outcome::send_final);
}

// SCRAM-SHA-256-PLUS with tls-server-end-point: the proof holds only with the hash of the
// certificate the server showed.
TEST(ScramServer, ChannelBindingNeedsTheCertificatesHash) {
  const Bytes end_point(32, 0xab);
  const std::string end_point_text(end_point.begin(), end_point.end());
  const auto exchange = [&](std::string_view mechanism, const std::string& gs2,
                            const std::string& cbind) {
    ScramServer server(derive_scram_verifier("pw"));
    server.offer_channel_binding(end_point);
    server.set_client_mechanism(mechanism);
    TestClient client{"pw", gs2};
    client.cbind_data = cbind;
    const ScramStep first = server.step(client.first());
    if (first.outcome != Outcome::send_continue) return first;
    return server.step(client.final_for(first.message));
  };
  const std::string bound = "p=tls-server-end-point,,";
  EXPECT_EQ(exchange(kScramSha256Plus, bound, end_point_text).outcome, Outcome::send_final);
  const auto other_certificate = exchange(kScramSha256Plus, bound, std::string(32, 'x'));
  EXPECT_EQ(other_certificate.outcome, Outcome::failed);
  EXPECT_EQ(other_certificate.reason, "SCRAM channel binding data does not match");
  EXPECT_EQ(exchange(kScramSha256Plus, "p=tls-unique,,", end_point_text).reason,
            "unsupported SCRAM channel binding type");
  EXPECT_EQ(exchange(kScramSha256Plus, "n,,", "").reason,
            "SCRAM-SHA-256-PLUS chosen without channel binding");
  EXPECT_EQ(exchange(kScramSha256, bound, end_point_text).reason,
            "SCRAM channel binding requested with a mechanism that does not bind");
  // A client that could bind, told -PLUS was not offered although it was: a downgrade.
  EXPECT_EQ(exchange(kScramSha256, "y,,", "").outcome, Outcome::failed);
  EXPECT_EQ(exchange(kScramSha256, "n,,", "").outcome, Outcome::send_final)
      << "a client that cannot bind still logs in";
  // Not offered (in the clear): p= is refused.
  ScramServer clear(derive_scram_verifier("pw"));
  EXPECT_EQ(clear.step(TestClient{"pw", bound}.first()).reason, "channel binding is not supported");
}

TEST(ScramServer, RefusesWrongPassword) {
  ScramServer server(derive_scram_verifier("pencil"));
  TestClient client{"pencil!"};
  const ScramStep first = server.step(client.first());
  const ScramStep final = server.step(client.final_for(first.message));
  EXPECT_EQ(final.outcome, Outcome::failed);
  EXPECT_EQ(final.failure, ScramFailure::invalid_password);
  EXPECT_TRUE(final.message.empty());
  EXPECT_EQ(server.state(), ScramServer::State::failed);
}

TEST(ScramServer, UnknownUserLooksAliveButAlwaysFails) {
  ScramServer server = ScramServer::for_unknown_user("ghost");
  ScramServer again = ScramServer::for_unknown_user("ghost");
  ScramServer other = ScramServer::for_unknown_user("phantom");
  TestClient client{"anything"};
  const ScramStep first = server.step(client.first());
  ASSERT_EQ(first.outcome, Outcome::send_continue);
  // The same name gets the same salt every time, so retries reveal nothing.
  EXPECT_EQ(attribute(first.message, 's'), attribute(again.step(client.first()).message, 's'));
  EXPECT_NE(attribute(first.message, 's'), attribute(other.step(client.first()).message, 's'));
  EXPECT_EQ(server.step(client.final_for(first.message)).failure, ScramFailure::invalid_password);
}

TEST(ScramServer, RefusesMalformedClientFirst) {
  const std::string_view cases[] = {
      "",
      "n",
      "x,,n=,r=abc",
      "p=tls-server-end-point,,n=,r=abc",  // channel binding
      "n,a=admin,n=,r=abc",                // authorisation identity
      "n,,m=ext,n=,r=abc",                 // mandatory extension
      "n,,r=abc",                          // no user attribute
      "n,,n=",                             // no nonce
      "n,,n=,r=",                          // empty nonce
      "n,,n=,x=abc",
      "n,,n=,r=ab\x7f",  // non-printable nonce
      std::string_view("n,,n=,r=a\0b", 11),
  };
  for (const std::string_view message : cases) {
    ScramServer server(rfc_verifier());
    const ScramStep step = server.step(message);
    EXPECT_EQ(step.outcome, Outcome::failed) << testing::PrintToString(std::string(message));
    EXPECT_EQ(step.failure, ScramFailure::protocol_violation);
    EXPECT_FALSE(step.reason.empty());
  }
}

TEST(ScramServer, RefusesMalformedClientFinal) {
  const std::string nonce = "rOprNGfwEbeRWgbNEkqO" + std::string(kRfcServerNonce);
  const std::string proof = "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
  const std::string cases[] = {
      "",
      "c=biws,r=" + nonce,                // no proof
      "r=" + nonce + "," + proof,         // no binding
      "c=eSws,r=" + nonce + "," + proof,  // binding says y,, but first said n,,
      "c=cD10bHMtc2VydmVyLWVuZC1wb2ludCwsAAAA,r=" + nonce + "," + proof,  // binding data
      "c=biws,r=rOprNGfwEbeRWgbNEkqO," + proof,                           // server nonce dropped
      "c=biws,r=" + nonce + "x," + proof,                                 // nonce altered
      "c=biws," + proof,                                                  // no nonce
      "c=biws,r=" + nonce + ",p=dHzbZapWIk4j",                            // short proof
      "c=biws,r=" + nonce + ",p=not base64!",
      "c=biws,r=" + nonce + ",p=",
  };
  for (const std::string& message : cases) {
    ScramServer server(rfc_verifier(), std::string(kRfcServerNonce));
    ASSERT_EQ(server.step(kRfcClientFirst).outcome, Outcome::send_continue);
    const ScramStep step = server.step(message);
    EXPECT_EQ(step.outcome, Outcome::failed) << message;
    EXPECT_EQ(step.failure, ScramFailure::protocol_violation) << message;
  }
}

TEST(ScramServer, RefusesMessagesAfterTheEnd) {
  ScramServer server(rfc_verifier(), std::string(kRfcServerNonce));
  server.step(kRfcClientFirst);
  ASSERT_EQ(server.step(kRfcClientFinal).outcome, Outcome::send_final);
  EXPECT_EQ(server.step(kRfcClientFinal).failure, ScramFailure::protocol_violation);
}

TEST(ScramVerifier, RoundTripsPostgreSqlForm) {
  const ScramVerifier verifier = rfc_verifier();
  const std::string text = format_scram_verifier(verifier);
  EXPECT_TRUE(text.starts_with("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"));
  const auto parsed = parse_scram_verifier(text);
  ASSERT_TRUE(parsed) << parsed.error();
  EXPECT_EQ(parsed->iterations, 4096);
  EXPECT_EQ(parsed->salt, verifier.salt);
  EXPECT_EQ(parsed->stored_key, verifier.stored_key);
  EXPECT_EQ(parsed->server_key, verifier.server_key);
}

TEST(ScramVerifier, RefusesMalformedText) {
  const std::string keys =
      format_scram_verifier(rfc_verifier())
          .substr(std::string("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==").size());
  const std::string cases[] = {
      "SCRAM-SHA-1$4096:W22ZaJ0SNY7soEsUEjb6gQ==" + keys,
      "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==",
      "SCRAM-SHA-256$0:W22ZaJ0SNY7soEsUEjb6gQ==" + keys,
      "SCRAM-SHA-256$-1:W22ZaJ0SNY7soEsUEjb6gQ==" + keys,
      "SCRAM-SHA-256$40x96:W22ZaJ0SNY7soEsUEjb6gQ==" + keys,
      "SCRAM-SHA-256$4096:" + keys,
      "SCRAM-SHA-256$4096:W22Z aJ0SNY7soEsUEjb6gQ==" + keys,
      "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$AAAA:AAAA",
      "SCRAM-SHA-256$4096W22ZaJ0SNY7soEsUEjb6gQ==" + keys,
  };
  for (const std::string& text : cases) EXPECT_FALSE(parse_scram_verifier(text)) << text;
}

TEST(Base64, DecodesStrictly) {
  EXPECT_EQ(base64_decode("")->size(), 0u);
  EXPECT_EQ(base64_decode("YQ=="), Bytes({'a'}));
  EXPECT_EQ(base64_decode("YWI="), Bytes({'a', 'b'}));
  EXPECT_EQ(base64_decode("YWJj"), Bytes({'a', 'b', 'c'}));
  EXPECT_FALSE(base64_decode("YQ="));
  EXPECT_FALSE(base64_decode("Y==="));
  EXPECT_FALSE(base64_decode("===="));
  EXPECT_FALSE(base64_decode(" YWJj"));
  EXPECT_FALSE(base64_decode("YW=j"));
  EXPECT_EQ(base64_encode(as_bytes("ab")), "YWI=");
}

}  // namespace
}  // namespace pgvigil::proxy::auth
