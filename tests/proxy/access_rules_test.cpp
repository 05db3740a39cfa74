// Access rules (auth.hba_file): parsing with file:line errors, and matching in order, first match
// winning, by connection type, TLS, database, user and address.

#include "proxy/auth/access_rules.hpp"

#include <gtest/gtest.h>

namespace pgvigil::proxy::auth {
namespace {

const ConnectionSource kLocal{true, "", false};
ConnectionSource tcp(const std::string& address, bool tls = false) { return {false, address, tls}; }

AccessRules parse(const std::string& text) {
  auto rules = parse_access_rules(text, "hba.conf");
  EXPECT_TRUE(rules) << rules.error();
  return rules ? *rules : AccessRules();
}

// The method of the matching rule, or "none".
std::string method_for(const AccessRules& rules, const ConnectionSource& source,
                       const std::string& database, const std::string& user) {
  const auto* rule = rules.match(source, database, user);
  return rule ? std::string(to_string(rule->method)) : "none";
}

TEST(AccessRules, FirstMatchWinsByTypeDatabaseUserAndAddress) {
  const auto rules = parse(
      "# TYPE   DATABASE  USER        ADDRESS        METHOD\n"
      "local     all       all                        trust\n"
      "hostssl   secure    all         all            cert\n"
      "host      app       alice,bob   10.0.0.0/8     scram-sha-256   # two users\n"
      "host      app       all         10.1.2.3       md5\n"
      "hostnossl all       all         192.168.0.0/16 reject\n"
      "host      all       all         ::1/128        trust\n"
      "host      all       all         127.0.0.1/32   md5\n");
  EXPECT_EQ(rules.rules().size(), 7u);
  EXPECT_EQ(method_for(rules, kLocal, "anything", "anyone"), "trust");
  EXPECT_EQ(method_for(rules, tcp("10.9.9.9", true), "secure", "x"), "cert");
  EXPECT_EQ(method_for(rules, tcp("10.9.9.9", false), "secure", "x"), "none")
      << "hostssl needs TLS";
  EXPECT_EQ(method_for(rules, tcp("10.1.2.3"), "app", "alice"), "scram-sha-256");
  EXPECT_EQ(method_for(rules, tcp("10.1.2.3"), "app", "carol"), "md5");
  EXPECT_EQ(method_for(rules, tcp("10.1.2.4"), "app", "carol"), "none");
  EXPECT_EQ(method_for(rules, tcp("11.0.0.1"), "app", "alice"), "none") << "outside 10.0.0.0/8";
  EXPECT_EQ(method_for(rules, tcp("192.168.4.5"), "app", "alice"), "reject");
  EXPECT_EQ(method_for(rules, tcp("192.168.4.5", true), "app", "alice"), "none")
      << "hostnossl does not match TLS";
  EXPECT_EQ(method_for(rules, tcp("::1"), "app", "x"), "trust");
  EXPECT_EQ(method_for(rules, tcp("127.0.0.1"), "app", "x"), "md5");
  EXPECT_EQ(method_for(rules, tcp("::ffff:127.0.0.1"), "app", "x"), "md5")
      << "an IPv4 client on an IPv6 listener";
}

TEST(AccessRules, AllAndBoundaryPrefixes) {
  const auto rules = parse(
      "host all all 0.0.0.0/0 md5\n"
      "host all all ::/0 scram-sha-256\n");
  EXPECT_EQ(method_for(rules, tcp("203.0.113.9"), "db", "u"), "md5");
  EXPECT_EQ(method_for(rules, tcp("2001:db8::1"), "db", "u"), "scram-sha-256");
  EXPECT_EQ(method_for(rules, kLocal, "db", "u"), "none") << "host rules are TCP only";
  const auto narrow = parse("host all all 10.0.0.128/25 trust\n");
  EXPECT_EQ(method_for(narrow, tcp("10.0.0.200"), "db", "u"), "trust");
  EXPECT_EQ(method_for(narrow, tcp("10.0.0.127"), "db", "u"), "none");
  EXPECT_TRUE(narrow.rules()[0].method == AccessMethod::trust);
  EXPECT_FALSE(narrow.needs_passwords());
  EXPECT_TRUE(rules.needs_passwords());
  EXPECT_TRUE(parse("hostssl all all all cert\n").needs_certificates());
}

TEST(AccessRules, ErrorsNameTheFileAndLine) {
  const auto error = [](const std::string& text) {
    const auto rules = parse_access_rules(text, "hba.conf");
    return rules ? std::string("parsed") : rules.error();
  };
  EXPECT_EQ(error("\n# comment\nhostx all all all trust\n"),
            "hba.conf:3: unknown connection type \"hostx\" (local, host, hostssl or hostnossl)");
  EXPECT_EQ(error("host all all trust\n"),
            "hba.conf:1: expected 5 fields (TYPE DATABASE USER ADDRESS METHOD), found 4");
  EXPECT_EQ(error("local all all 127.0.0.1 trust\n"),
            "hba.conf:1: expected 4 fields (local DATABASE USER METHOD), found 5");
  EXPECT_EQ(error("host all all 10.0.0.0/33 trust\n"),
            "hba.conf:1: invalid address \"10.0.0.0/33\" (all, an IP address, or a CIDR block such "
            "as 10.0.0.0/8)");
  EXPECT_TRUE(error("host all all example.com trust\n").starts_with("hba.conf:1: invalid address"));
  EXPECT_EQ(error("host all all all password\n"),
            "hba.conf:1: unknown method \"password\" (trust, md5, scram-sha-256, cert or reject)");
  EXPECT_EQ(error("host app,,b all all trust\n"), "hba.conf:1: empty database name in \"app,,b\"");
  EXPECT_EQ(error("local all all trust\r\n\r\n"), "parsed") << "CRLF lines";
  EXPECT_FALSE(load_access_rules("/nonexistent/hba.conf"));
}

}  // namespace
}  // namespace pgvigil::proxy::auth
