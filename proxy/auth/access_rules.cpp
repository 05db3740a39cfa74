#include "proxy/auth/access_rules.hpp"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <sstream>

namespace pgvigil::proxy::auth {
namespace {

using RulesResult = ParseResult<AccessRules>;

std::vector<std::string_view> words_of(std::string_view line) {
  std::vector<std::string_view> words;
  std::size_t at = 0;
  while (at < line.size()) {
    while (at < line.size() && (line[at] == ' ' || line[at] == '\t')) ++at;
    if (at >= line.size() || line[at] == '#') break;
    const auto begin = at;
    while (at < line.size() && line[at] != ' ' && line[at] != '\t' && line[at] != '#') ++at;
    words.push_back(line.substr(begin, at - begin));
  }
  return words;
}

// "all" -> empty (matches everything); else the comma-separated names.
bool read_names(std::string_view field, std::vector<std::string>& names) {
  if (field == "all") return true;
  std::size_t at = 0;
  while (at <= field.size()) {
    const auto comma = std::min(field.find(',', at), field.size());
    if (comma == at) return false;  // an empty name
    names.emplace_back(field.substr(at, comma - at));
    at = comma + 1;
  }
  return true;
}

// An address as bytes: 4 for IPv4 (also from ::ffff:a.b.c.d), 16 for IPv6; family 0 if invalid.
int parse_address(std::string_view text, std::array<std::uint8_t, 16>& bytes) {
  const std::string copy(text);
  if (inet_pton(AF_INET, copy.c_str(), bytes.data()) == 1) return AF_INET;
  if (inet_pton(AF_INET6, copy.c_str(), bytes.data()) != 1) return 0;
  static constexpr std::array<std::uint8_t, 12> kMappedPrefix = {0, 0, 0, 0, 0,    0,
                                                                 0, 0, 0, 0, 0xff, 0xff};
  if (std::equal(kMappedPrefix.begin(), kMappedPrefix.end(), bytes.begin())) {
    std::copy(bytes.begin() + 12, bytes.end(), bytes.begin());
    return AF_INET;
  }
  return AF_INET6;
}

void mask(std::array<std::uint8_t, 16>& bytes, int prefix_bits) {
  for (int i = 0; i < 16; ++i) {
    const int bits = std::clamp(prefix_bits - i * 8, 0, 8);
    bytes[static_cast<std::size_t>(i)] &= static_cast<std::uint8_t>(0xff00 >> bits);
  }
}

bool read_address(std::string_view field, AccessRule& rule) {
  if (field == "all") return true;
  rule.any_address = false;
  const auto slash = field.find('/');
  rule.family = parse_address(field.substr(0, slash), rule.network);
  if (rule.family == 0) return false;
  const int width = rule.family == AF_INET ? 32 : 128;
  rule.prefix_bits = width;
  if (slash != std::string_view::npos) {
    const auto bits = field.substr(slash + 1);
    const auto [end, error] =
        std::from_chars(bits.data(), bits.data() + bits.size(), rule.prefix_bits);
    if (error != std::errc() || end != bits.data() + bits.size() || rule.prefix_bits < 0 ||
        rule.prefix_bits > width) {
      return false;
    }
  }
  mask(rule.network, rule.prefix_bits);
  return true;
}

bool read_method(std::string_view field, AccessMethod& method) {
  if (field == "trust")
    method = AccessMethod::trust;
  else if (field == "md5")
    method = AccessMethod::md5;
  else if (field == "scram-sha-256")
    method = AccessMethod::scram_sha_256;
  else if (field == "cert")
    method = AccessMethod::cert;
  else if (field == "reject")
    method = AccessMethod::reject;
  else
    return false;
  return true;
}

bool listed(const std::vector<std::string>& names, std::string_view name) {
  return names.empty() || std::find(names.begin(), names.end(), name) != names.end();
}

}  // namespace

std::string_view to_string(AccessMethod method) {
  switch (method) {
    case AccessMethod::trust:
      return "trust";
    case AccessMethod::md5:
      return "md5";
    case AccessMethod::scram_sha_256:
      return "scram-sha-256";
    case AccessMethod::cert:
      return "cert";
    case AccessMethod::reject:
      return "reject";
  }
  return "reject";
}

const AccessRule* AccessRules::match(const ConnectionSource& source, std::string_view database,
                                     std::string_view user) const {
  std::array<std::uint8_t, 16> address{};
  const int family = source.local ? 0 : parse_address(source.address, address);
  for (const auto& rule : rules_) {
    using Type = AccessRule::Type;
    if ((rule.type == Type::local) != source.local) continue;
    if (rule.type == Type::hostssl && !source.tls) continue;
    if (rule.type == Type::hostnossl && source.tls) continue;
    if (!listed(rule.databases, database) || !listed(rule.users, user)) continue;
    if (!source.local && !rule.any_address) {
      if (family != rule.family) continue;
      auto masked = address;
      mask(masked, rule.prefix_bits);
      if (masked != rule.network) continue;
    }
    return &rule;
  }
  return nullptr;
}

bool AccessRules::needs_passwords() const {
  return std::any_of(rules_.begin(), rules_.end(), [](const AccessRule& rule) {
    return rule.method == AccessMethod::md5 || rule.method == AccessMethod::scram_sha_256;
  });
}

bool AccessRules::needs_certificates() const {
  return std::any_of(rules_.begin(), rules_.end(),
                     [](const AccessRule& rule) { return rule.method == AccessMethod::cert; });
}

ParseResult<AccessRules> parse_access_rules(std::string_view text, std::string_view file_name) {
  std::vector<AccessRule> rules;
  int line_number = 0;
  while (!text.empty()) {
    ++line_number;
    const auto newline = text.find('\n');
    auto line = text.substr(0, newline);
    text = newline == std::string_view::npos ? std::string_view() : text.substr(newline + 1);
    if (line.ends_with('\r')) line.remove_suffix(1);
    const auto words = words_of(line);
    if (words.empty()) continue;
    const auto fail = [&](const std::string& message) {
      return RulesResult::fail(std::string(file_name) + ":" + std::to_string(line_number) + ": " +
                               message);
    };
    AccessRule rule;
    rule.line = line_number;
    const auto type = words[0];
    if (type == "local")
      rule.type = AccessRule::Type::local;
    else if (type == "host")
      rule.type = AccessRule::Type::host;
    else if (type == "hostssl")
      rule.type = AccessRule::Type::hostssl;
    else if (type == "hostnossl")
      rule.type = AccessRule::Type::hostnossl;
    else
      return fail("unknown connection type \"" + std::string(type) +
                  "\" (local, host, hostssl or hostnossl)");
    const std::size_t expected = rule.type == AccessRule::Type::local ? 4 : 5;
    if (words.size() != expected) {
      return fail(
          "expected " + std::to_string(expected) + " fields (" +
          (expected == 4 ? "local DATABASE USER METHOD" : "TYPE DATABASE USER ADDRESS METHOD") +
          "), found " + std::to_string(words.size()));
    }
    if (!read_names(words[1], rule.databases))
      return fail("empty database name in \"" + std::string(words[1]) + "\"");
    if (!read_names(words[2], rule.users))
      return fail("empty user name in \"" + std::string(words[2]) + "\"");
    if (expected == 5 && !read_address(words[3], rule)) {
      return fail("invalid address \"" + std::string(words[3]) +
                  "\" (all, an IP address, or a CIDR block such as 10.0.0.0/8)");
    }
    if (!read_method(words[expected - 1], rule.method)) {
      return fail("unknown method \"" + std::string(words[expected - 1]) +
                  "\" (trust, md5, scram-sha-256, cert or reject)");
    }
    rules.push_back(std::move(rule));
  }
  return RulesResult::ok(AccessRules(std::move(rules)));
}

ParseResult<AccessRules> load_access_rules(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return RulesResult::fail(path + ": cannot open access rules file");
  std::ostringstream content;
  content << file.rdbuf();
  return parse_access_rules(content.str(), path);
}

}  // namespace pgvigil::proxy::auth
