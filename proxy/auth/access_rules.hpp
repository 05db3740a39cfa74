#pragma once
// Access rules (auth.hba_file): who may connect to which database as which user, and how they
// authenticate, in the order written, the first match winning, as in pg_hba.conf. One rule per
// line:
//
//   # TYPE     DATABASE   USER         ADDRESS          METHOD
//   local      all        all                           trust
//   hostssl    app        alice,bob    10.0.0.0/8       scram-sha-256
//   host       all        all          192.168.1.7      md5
//   hostssl    reports    all          all              cert
//   host       all        all          all              reject
//
// - TYPE: local (the Unix socket), host (TCP, TLS or not), hostssl (TCP over TLS), hostnossl
//   (TCP in the clear).
// - DATABASE, USER: `all`, or names separated by commas (as the client sends them; no quotes,
//   groups or regular expressions).
// - ADDRESS (not for local): `all`, an address (one host), or a CIDR block (IPv4 or IPv6). An
//   IPv4 client on an IPv6 listener (::ffff:a.b.c.d) matches IPv4 rules.
// - METHOD: trust, md5, scram-sha-256 (against auth.users_file), cert (a client certificate
//   verified against listen.tls.ca_file whose common name is the user; no password), reject.
// A connection no rule matches is rejected. Blank lines and '#' comments are ignored; errors
// name the file and line.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/wire/parse_result.hpp"

namespace pgvigil::proxy::auth {

enum class AccessMethod : std::uint8_t { trust, md5, scram_sha_256, cert, reject };

// Where a connection comes from.
struct ConnectionSource {
  bool local = false;   // the Unix socket
  std::string address;  // TCP: the peer's IP as text
  bool tls = false;
};

struct AccessRule {
  enum class Type : std::uint8_t { local, host, hostssl, hostnossl };
  Type type = Type::host;
  std::vector<std::string> databases;  // empty: all
  std::vector<std::string> users;      // empty: all
  bool any_address = true;
  int family = 0;                          // AF_INET or AF_INET6 when !any_address
  std::array<std::uint8_t, 16> network{};  // masked
  int prefix_bits = 0;
  AccessMethod method = AccessMethod::reject;
  int line = 0;  // in the file, for the log
};

class AccessRules {
 public:
  AccessRules() = default;
  explicit AccessRules(std::vector<AccessRule> rules) : rules_(std::move(rules)) {}

  // The first rule that matches, or nullptr (which rejects).
  const AccessRule* match(const ConnectionSource& source, std::string_view database,
                          std::string_view user) const;
  const std::vector<AccessRule>& rules() const { return rules_; }
  // Some rule asks for a password (md5, scram-sha-256): a users file is needed.
  bool needs_passwords() const;
  // Some rule asks for a client certificate (cert): listen.tls.ca_file is needed.
  bool needs_certificates() const;

 private:
  std::vector<AccessRule> rules_;
};

// `file_name` only labels error messages ("<file>:<line>: ...").
ParseResult<AccessRules> parse_access_rules(std::string_view text, std::string_view file_name);
ParseResult<AccessRules> load_access_rules(const std::string& path);

std::string_view to_string(AccessMethod method);

}  // namespace pgvigil::proxy::auth
