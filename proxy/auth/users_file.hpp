#pragma once
// The users file: who may connect through the proxy, and their secret.
//
// Format (compatible with PgBouncer's userlist.txt), one user per line:
//
//   "username" "secret"
//
// - Both fields are double-quoted; a literal '"' inside a field is written twice ("").
// - Fields are separated by spaces or tabs. After the second field only whitespace or a
//   '#' comment may follow.
// - The secret is one of:
//     a plain password                            -> md5 and SCRAM-SHA-256 both possible
//     md5<32 lower-case hex digits>               -> md5(password + username), md5 only
//     SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>   -> SCRAM-SHA-256 only
//   (the last two as PostgreSQL stores them: SELECT rolpassword FROM pg_authid).
// - Blank lines and lines whose first non-blank character is '#' are ignored. CRLF is accepted.
// - A user name may appear once; names are case-sensitive, as in PostgreSQL.
// Errors are reported as "<file>:<line>: <message>" and never quote a secret.

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/auth/scram_verifier.hpp"
#include "proxy/wire/parse_result.hpp"

namespace pgvigil::proxy::auth {

enum class SecretKind { plain, md5, scram_sha_256 };

struct UserEntry {
  std::string name;
  std::string secret;  // as written; validated for md5 and SCRAM forms
  SecretKind kind = SecretKind::plain;
  // The SCRAM verifier, made once when the file is read (absent for md5 secrets): a plain
  // password costs its PBKDF2 then, never while a client logs in, so no client that has not
  // authenticated can make pgvigil run it, and a login takes as long for every kind of user.
  std::optional<ScramVerifier> scram;
};

class UsersFile {
 public:
  UsersFile() = default;
  explicit UsersFile(std::vector<UserEntry> entries, NameSalts name_salts = process_name_salts())
      : entries_(std::move(entries)), name_salts_(std::move(name_salts)) {}

  // nullptr when the user is not listed.
  const UserEntry* find(std::string_view name) const;
  const std::vector<UserEntry>& entries() const { return entries_; }
  // What unknown users and plain passwords are shown (scram_verifier.hpp).
  const NameSalts& name_salts() const { return name_salts_; }

 private:
  std::vector<UserEntry> entries_;
  NameSalts name_salts_;
};

// `file_name` only labels error messages.
ParseResult<UsersFile> parse_users_file(std::string_view text, std::string_view file_name);

// Reads and parses the file; an unreadable file is an error naming it.
ParseResult<UsersFile> load_users_file(const std::filesystem::path& path);

// One user's entry from a secret found elsewhere (auth.query): classified and validated as a
// line of the file is, with its SCRAM verifier made (`salts` serve a plain password).
ParseResult<UserEntry> make_user_entry(std::string name, std::string secret,
                                       const NameSalts& salts);

// The verifier to run SCRAM with: parsed for a SCRAM secret, derived for a plain password with
// the user name's salt and count (NameSalts: what an unknown user is shown too) at one PBKDF2 run. Fails
// for md5 secrets, which cannot be turned into a SCRAM verifier. parse_users_file calls it once
// per entry (UserEntry::scram).
ParseResult<ScramVerifier> scram_verifier_for(const UserEntry& entry,
                                              const NameSalts& salts = process_name_salts());

}  // namespace pgvigil::proxy::auth
