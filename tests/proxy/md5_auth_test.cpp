// PostgreSQL md5 authentication, checked against an independent computation with OpenSSL.

#include "proxy/auth/md5_auth.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <memory>

#include "proxy/auth/crypto.hpp"

namespace pgvigil::proxy::auth {
namespace {

// The test's own MD5 (streaming EVP API, unlike the library's one-shot) in lower-case hex.
std::string reference_md5_hex(std::string_view a, std::string_view b = {}) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> context(EVP_MD_CTX_new(),
                                                                  EVP_MD_CTX_free);
  unsigned char digest[16];
  unsigned int size = 0;
  EVP_DigestInit_ex(context.get(), EVP_md5(), nullptr);
  EVP_DigestUpdate(context.get(), a.data(), a.size());
  EVP_DigestUpdate(context.get(), b.data(), b.size());
  EVP_DigestFinal_ex(context.get(), digest, &size);
  std::string hex;
  for (unsigned i = 0; i < size; ++i) {
    char pair[3];
    std::snprintf(pair, sizeof pair, "%02x", digest[i]);
    hex += pair;
  }
  return hex;
}

constexpr Md5Salt kMd5Salt{0x9a, 0x00, 0x3b, 0xff};

std::string_view salt_text() {
  return {reinterpret_cast<const char*>(kMd5Salt.data()), kMd5Salt.size()};
}

// What libpq sends: "md5" + md5(md5hex(password + user) + salt).
std::string reference_response(std::string_view user, std::string_view password) {
  return "md5" + reference_md5_hex(reference_md5_hex(password, user), salt_text());
}

TEST(Md5Auth, KnownDigests) {
  EXPECT_EQ(md5_hex(as_bytes("")), "d41d8cd98f00b204e9800998ecf8427e");
  EXPECT_EQ(md5_hex(as_bytes("abc")), "900150983cd24fb0d6963f7d28e17f72");
}

TEST(Md5Auth, StoredHashMatchesPostgreSqlFormula) {
  EXPECT_EQ(md5_stored_hash("alice", "s3cret"), "md5" + reference_md5_hex("s3cretalice"));
  EXPECT_TRUE(is_md5_hash(md5_stored_hash("alice", "s3cret")));
}

TEST(Md5Auth, ClientResponseMatchesLibpqFormula) {
  EXPECT_EQ(md5_client_response(md5_stored_hash("alice", "s3cret"), kMd5Salt),
            reference_response("alice", "s3cret"));
}

TEST(Md5Auth, VerifiesAgainstPlainPasswordAndStoredHash) {
  const std::string response = reference_response("alice", "s3cret");
  EXPECT_TRUE(md5_verify("alice", "s3cret", kMd5Salt, response));
  EXPECT_TRUE(md5_verify("alice", "md5" + reference_md5_hex("s3cretalice"), kMd5Salt, response));
}

TEST(Md5Auth, RefusesWrongAnswers) {
  const std::string response = reference_response("alice", "s3cret");
  EXPECT_FALSE(md5_verify("alice", "other", kMd5Salt, response));
  EXPECT_FALSE(md5_verify("bob", "s3cret", kMd5Salt, response));  // the user is salted in
  EXPECT_FALSE(md5_verify("alice", "s3cret", Md5Salt{1, 2, 3, 4}, response));
  EXPECT_FALSE(md5_verify("alice", "s3cret", kMd5Salt, response.substr(0, 34)));
  EXPECT_FALSE(md5_verify("alice", "s3cret", kMd5Salt, ""));
  EXPECT_FALSE(
      md5_verify("alice", "s3cret", kMd5Salt, "s3cret"));  // cleartext is not an md5 answer
}

TEST(Md5Auth, RecognisesStoredHashes) {
  EXPECT_TRUE(is_md5_hash("md5" + std::string(32, 'a')));
  EXPECT_FALSE(is_md5_hash("md5" + std::string(32, 'A')));  // PostgreSQL stores lower case
  EXPECT_FALSE(is_md5_hash("md5" + std::string(31, 'a')));
  EXPECT_FALSE(is_md5_hash("md5" + std::string(32, 'g')));
  EXPECT_FALSE(is_md5_hash("MD5" + std::string(32, 'a')));
}

}  // namespace
}  // namespace pgvigil::proxy::auth
