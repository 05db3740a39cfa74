// Users file: accepted syntax, secret kinds, and errors that name file and line.

#include "proxy/auth/users_file.hpp"

#include <gtest/gtest.h>

#include "proxy/auth/md5_auth.hpp"
#include "proxy/auth/scram_server.hpp"

namespace pgvigil::proxy::auth {
namespace {

const std::string scram_secret =
    format_scram_verifier(derive_scram_verifier("pencil", as_bytes("salt"), 4096));

TEST(UsersFile, ParsesAllSecretKinds) {
  const std::string text =
      "# pgvigil users\n"
      "\n"
      "\"alice\" \"plain pass\"\n"
      "  \"bob\"\t\"" +
      md5_stored_hash("bob", "x") +
      "\"   # trailing comment\r\n"
      "\"carol\" \"" +
      scram_secret +
      "\"\n"
      "\"dave \"\"the quote\"\"\" \"p\"\"w\"";  // no final newline
  const auto users = parse_users_file(text, "users.txt");
  ASSERT_TRUE(users) << users.error();
  ASSERT_EQ(users->entries().size(), 4u);
  EXPECT_EQ(users->find("alice")->secret, "plain pass");
  EXPECT_EQ(users->find("alice")->kind, SecretKind::plain);
  EXPECT_EQ(users->find("bob")->kind, SecretKind::md5);
  EXPECT_EQ(users->find("carol")->kind, SecretKind::scram_sha_256);
  ASSERT_NE(users->find("dave \"the quote\""), nullptr);
  EXPECT_EQ(users->find("dave \"the quote\"")->secret, "p\"w");
  EXPECT_EQ(users->find("Alice"), nullptr);  // case-sensitive
}

TEST(UsersFile, EmptyFileHasNoUsers) {
  const auto users = parse_users_file("# nobody\n\n", "users.txt");
  ASSERT_TRUE(users);
  EXPECT_TRUE(users->entries().empty());
}

TEST(UsersFile, ErrorsNameFileAndLine) {
  struct Case {
    std::string text;
    std::string expected_start;
  };
  const Case cases[] = {
      {"\"a\" \"x\"\n\"b\" \"unterminated\n", "users.txt:2: unterminated quoted secret"},
      {"# c\n\n\"a\" \"x\"\nalice \"x\"\n", "users.txt:4: expected a double-quoted user name"},
      {"\"a\"\n", "users.txt:1: expected blank space after the user name"},
      {"\"a\" \n", "users.txt:1: expected a double-quoted secret"},
      {"\"a\"\"x\"\n", "users.txt:1: expected blank space"},  // "" is a quote inside
      {"\"a\n", "users.txt:1: unterminated quoted user name"},
      {"\"a\" \"x\" extra\n", "users.txt:1: unexpected text after the secret"},
      {"\"\" \"x\"\n", "users.txt:1: empty user name"},
      {"\"a\" \"\"\n", "users.txt:1: empty secret"},
      {"\"a\" \"x\"\n\"a\" \"y\"\n", "users.txt:2: duplicate user \"a\""},
      {"\"a\" \"x\"\r\n\"b\" \"SCRAM-SHA-256$4096:bad\"\r\n", "users.txt:2: SCRAM verifier"},
  };
  for (const Case& c : cases) {
    const auto users = parse_users_file(c.text, "users.txt");
    ASSERT_FALSE(users) << c.text;
    EXPECT_TRUE(users.error().starts_with(c.expected_start)) << users.error();
  }
}

TEST(UsersFile, ErrorsNeverQuoteTheSecret) {
  const auto users = parse_users_file("\"a\" \"SCRAM-SHA-256$4096:topsecret$x:y\"\n", "u");
  ASSERT_FALSE(users);
  EXPECT_EQ(users.error().find("topsecret"), std::string::npos) << users.error();
}

TEST(UsersFile, MissingFileIsAnError) {
  const auto users = load_users_file("/nonexistent/pgvigil-users.txt");
  ASSERT_FALSE(users);
  EXPECT_TRUE(users.error().starts_with("/nonexistent/pgvigil-users.txt: ")) << users.error();
}

TEST(UsersFile, ScramVerifierForEachKind) {
  const auto plain = scram_verifier_for({"alice", "pencil", SecretKind::plain});
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->iterations, kDefaultScramIterations);
  EXPECT_EQ(plain->salt.size(), kDefaultScramSaltSize);
  const auto scram = scram_verifier_for({"carol", scram_secret, SecretKind::scram_sha_256});
  ASSERT_TRUE(scram);
  EXPECT_EQ(format_scram_verifier(*scram), scram_secret);
  EXPECT_FALSE(scram_verifier_for({"bob", md5_stored_hash("bob", "x"), SecretKind::md5}));
}

// A plain password's verifier is made once, when the file is read, with the salt its name would
// get as an unknown user: logging in runs no PBKDF2, and the salt shown says nothing of whether
// the user exists.
TEST(UsersFile, VerifiersAreMadeOnceWithTheNamesSalt) {
  const auto users =
      parse_users_file("\"alice\" \"pencil\"\n\"carol\" \"" + scram_secret + "\"\n\"bob\" \"" +
                           md5_stored_hash("bob", "x") + "\"\n",
                       "users.txt");
  ASSERT_TRUE(users) << users.error();
  const auto* alice = users->find("alice");
  ASSERT_TRUE(alice && alice->scram);
  const auto& salts = users->name_salts();
  EXPECT_EQ(alice->scram->salt, name_salt(salts, "alice"));
  EXPECT_EQ(alice->scram->salt, ScramServer::for_unknown_user("alice", salts).verifier().salt)
      << "the salt alice would be shown if she were not listed";
  EXPECT_EQ(format_scram_verifier(*alice->scram),
            format_scram_verifier(derive_scram_verifier("pencil", name_salt(salts, "alice"))));
  ASSERT_TRUE(users->find("carol")->scram);
  EXPECT_EQ(format_scram_verifier(*users->find("carol")->scram), scram_secret);
  EXPECT_FALSE(users->find("bob")->scram) << "an md5 secret cannot do SCRAM";
  EXPECT_NE(name_salt(salts, "alice"), name_salt(salts, "alicf"));
}

// Salts that changed at a restart while stored verifiers' did not would tell listed users from
// others: the key comes from the file's secrets, the count from its stored verifiers.
TEST(UsersFile, NameSaltsAreTheFilesAcrossRestartsAndFollowStoredIterations) {
  const std::string text = "\"alice\" \"pencil\"\n\"carol\" \"" + scram_secret + "\"\n";
  const auto first = parse_users_file(text, "users.txt");
  const auto again = parse_users_file(text, "users.txt");
  ASSERT_TRUE(first && again);
  EXPECT_EQ(name_salt(first->name_salts(), "nobody"), name_salt(again->name_salts(), "nobody"));
  EXPECT_EQ(first->find("alice")->scram->salt, again->find("alice")->scram->salt);
  const auto other = parse_users_file("\"alice\" \"other\"\n", "users.txt");
  ASSERT_TRUE(other);
  EXPECT_NE(name_salt(first->name_salts(), "nobody"), name_salt(other->name_salts(), "nobody"))
      << "other secrets, another key";
  const auto stored = parse_scram_verifier(scram_secret);
  ASSERT_TRUE(stored);
  EXPECT_EQ(first->name_salts().iterations, stored->iterations);
  EXPECT_EQ(first->find("alice")->scram->iterations, stored->iterations);
}

// auth.query's answers become entries as a line of the file does.
TEST(UsersFile, EntriesFromASecretFoundOnTheServer) {
  const NameSalts salts = process_name_salts();
  const auto scram = make_user_entry("carol", scram_secret, salts);
  ASSERT_TRUE(scram) << scram.error();
  EXPECT_EQ(scram->kind, SecretKind::scram_sha_256);
  ASSERT_TRUE(scram->scram);
  EXPECT_EQ(format_scram_verifier(*scram->scram), scram_secret);

  const auto md5 = make_user_entry("bob", "md5" + std::string(32, 'a'), salts);
  ASSERT_TRUE(md5);
  EXPECT_EQ(md5->kind, SecretKind::md5);
  EXPECT_FALSE(md5->scram);

  const auto plain = make_user_entry("alice", "pencil", salts);
  ASSERT_TRUE(plain);
  ASSERT_TRUE(plain->scram);
  EXPECT_EQ(plain->scram->salt, name_salt(salts, "alice"));

  const auto broken = make_user_entry("dave", "SCRAM-SHA-256$4096:broken", salts);
  ASSERT_FALSE(broken);
  EXPECT_NE(broken.error().find("\"dave\""), std::string::npos) << broken.error();
  EXPECT_EQ(broken.error().find("broken"), std::string::npos) << "the secret is not quoted";
}

}  // namespace
}  // namespace pgvigil::proxy::auth
