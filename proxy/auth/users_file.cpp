#include "proxy/auth/users_file.hpp"

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>

#include "proxy/auth/md5_auth.hpp"

namespace pgvigil::proxy::auth {
namespace {

using UsersFileResult = ParseResult<UsersFile>;

// The key of the name salts, from the file's secrets: the same file gives the same salts after
// a restart and on another instance, and nobody without the secrets can compute them. The
// iteration count is the one the stored verifiers use most (PostgreSQL's default without any).
NameSalts name_salts_of(const std::vector<UserEntry>& entries) {
  std::string material = "pgvigil name salts";
  std::map<int, int> counts;
  for (const auto& entry : entries) {
    material.append(1, '\0').append(entry.name).append(1, '\0').append(entry.secret);
    if (entry.kind != SecretKind::scram_sha_256) continue;
    if (const auto stored = parse_scram_verifier(entry.secret)) ++counts[stored->iterations];
  }
  NameSalts salts;
  const Sha256Digest key = sha256(as_bytes(material));
  salts.key.assign(key.begin(), key.end());
  int most = 0;
  for (const auto& [iterations, count] : counts) {
    if (count > most) {
      most = count;
      salts.iterations = iterations;
    }
  }
  return salts;
}

bool is_blank(char c) { return c == ' ' || c == '\t'; }

void skip_blanks(std::string_view& text) {
  while (!text.empty() && is_blank(text.front())) text.remove_prefix(1);
}

// Reads one "quoted" field from the front of `text`. Empty error means success.
std::string read_quoted(std::string_view& text, std::string& field, std::string_view what) {
  skip_blanks(text);
  if (text.empty() || text.front() != '"') return "expected a double-quoted " + std::string(what);
  text.remove_prefix(1);
  field.clear();
  while (true) {
    if (text.empty()) return "unterminated quoted " + std::string(what);
    const char c = text.front();
    text.remove_prefix(1);
    if (c != '"') {
      field.push_back(c);
    } else if (!text.empty() && text.front() == '"') {
      field.push_back('"');  // "" is an escaped quote
      text.remove_prefix(1);
    } else {
      return {};
    }
  }
}

// Classifies and validates a secret. Empty error means success.
std::string classify_secret(const std::string& secret, SecretKind& kind) {
  if (secret.empty()) return "empty secret";
  if (is_scram_secret(secret)) {
    kind = SecretKind::scram_sha_256;
    const ParseResult<ScramVerifier> verifier = parse_scram_verifier(secret);
    return verifier ? std::string() : verifier.error();
  }
  // Same rule as PostgreSQL: exactly "md5" + 32 hex digits is a hash, anything else a password.
  kind = is_md5_hash(secret) ? SecretKind::md5 : SecretKind::plain;
  return {};
}

}  // namespace

const UserEntry* UsersFile::find(std::string_view name) const {
  const auto it = std::find_if(entries_.begin(), entries_.end(),
                               [&](const UserEntry& entry) { return entry.name == name; });
  return it == entries_.end() ? nullptr : &*it;
}

ParseResult<UsersFile> parse_users_file(std::string_view text, std::string_view file_name) {
  std::vector<UserEntry> entries;
  std::size_t line_number = 0;
  const auto error_at = [&](const std::string& message) {
    return UsersFileResult::fail(std::string(file_name) + ":" + std::to_string(line_number) + ": " +
                                 message);
  };

  while (!text.empty()) {
    ++line_number;
    const std::size_t newline = text.find('\n');
    std::string_view line = text.substr(0, newline);
    text = newline == std::string_view::npos ? std::string_view() : text.substr(newline + 1);
    if (line.ends_with('\r')) line.remove_suffix(1);

    skip_blanks(line);
    if (line.empty() || line.front() == '#') continue;

    UserEntry entry;
    if (std::string error = read_quoted(line, entry.name, "user name"); !error.empty())
      return error_at(error);
    if (entry.name.empty()) return error_at("empty user name");
    if (line.empty() || !is_blank(line.front()))
      return error_at("expected blank space after the user name");
    if (std::string error = read_quoted(line, entry.secret, "secret"); !error.empty())
      return error_at(error);
    skip_blanks(line);
    if (!line.empty() && line.front() != '#') return error_at("unexpected text after the secret");
    if (std::string error = classify_secret(entry.secret, entry.kind); !error.empty()) {
      return error_at(error + " for user \"" + entry.name + "\"");
    }
    for (const UserEntry& earlier : entries) {
      if (earlier.name == entry.name) return error_at("duplicate user \"" + entry.name + "\"");
    }
    entries.push_back(std::move(entry));
  }
  const NameSalts salts = name_salts_of(entries);
  for (auto& entry : entries) {
    if (entry.kind == SecretKind::md5) continue;
    auto verifier = scram_verifier_for(entry, salts);
    if (!verifier) return UsersFileResult::fail(std::string(file_name) + ": " + verifier.error());
    entry.scram = std::move(verifier).value();
  }
  return UsersFileResult::ok(UsersFile(std::move(entries), salts));
}

ParseResult<UsersFile> load_users_file(const std::filesystem::path& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return UsersFileResult::fail(path.string() + ": cannot open users file");
  std::ostringstream content;
  content << file.rdbuf();
  if (file.bad()) return UsersFileResult::fail(path.string() + ": cannot read users file");
  return parse_users_file(content.str(), path.string());
}

ParseResult<UserEntry> make_user_entry(std::string name, std::string secret,
                                       const NameSalts& salts) {
  UserEntry entry;
  entry.name = std::move(name);
  entry.secret = std::move(secret);
  if (std::string error = classify_secret(entry.secret, entry.kind); !error.empty()) {
    return ParseResult<UserEntry>::fail(error + " for user \"" + entry.name + "\"");
  }
  if (entry.kind != SecretKind::md5) {
    auto verifier = scram_verifier_for(entry, salts);
    if (!verifier) return ParseResult<UserEntry>::fail(verifier.error());
    entry.scram = std::move(verifier).value();
  }
  return ParseResult<UserEntry>::ok(std::move(entry));
}

ParseResult<ScramVerifier> scram_verifier_for(const UserEntry& entry, const NameSalts& salts) {
  switch (entry.kind) {
    case SecretKind::scram_sha_256:
      return parse_scram_verifier(entry.secret);
    case SecretKind::plain:
      return ParseResult<ScramVerifier>::ok(
          derive_scram_verifier(entry.secret, name_salt(salts, entry.name), salts.iterations));
    case SecretKind::md5:
      break;
  }
  return ParseResult<ScramVerifier>::fail("user \"" + entry.name +
                                          "\" has an md5 secret, which cannot do SCRAM-SHA-256");
}

}  // namespace pgvigil::proxy::auth
