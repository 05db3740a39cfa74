// The records behind named prepared statements in transaction pooling
// (proxy/relay/prepared_statements): shared texts, a client's names, and one connection's
// statements kept least recently used first within a limit.
#include "proxy/relay/prepared_statements.hpp"

#include <gtest/gtest.h>

namespace pgvigil::proxy::relay {
namespace {

TEST(StatementTexts, TheSameTextAndTypesAreOneSharedCopy) {
  StatementTexts texts;
  const auto a = texts.intern("SELECT $1", std::string("\0\x01\0\0\0\x17", 6));
  const auto b = texts.intern("SELECT $1", std::string("\0\x01\0\0\0\x17", 6));
  const auto other_types = texts.intern("SELECT $1", std::string("\0\0", 2));
  EXPECT_EQ(a, b);
  EXPECT_NE(a, other_types);
  EXPECT_NE(a, texts.intern("SELECT $2", std::string("\0\x01\0\0\0\x17", 6)));
}

TEST(StatementTexts, ATextNobodyHoldsIsMadeAgain) {
  StatementTexts texts;
  auto a = texts.intern("SELECT 1", "");
  const auto* first = a.get();
  a.reset();
  for (int i = 0; i < 300; ++i) texts.intern("SELECT " + std::to_string(i + 2), "");
  const auto again = texts.intern("SELECT 1", "");
  EXPECT_EQ(again->query, "SELECT 1");
  (void)first;
}

TEST(ClientStatements, NamesMapToTexts) {
  StatementTexts texts;
  ClientStatements statements;
  statements.add("S_1", texts.intern("SELECT 1", ""));
  ASSERT_NE(statements.find("S_1"), nullptr);
  EXPECT_EQ((*statements.find("S_1"))->query, "SELECT 1");
  EXPECT_EQ(statements.find("S_2"), nullptr);
  statements.remove("S_1");
  EXPECT_EQ(statements.find("S_1"), nullptr);
}

TEST(ServerStatements, EachTextGetsANameOfItsOwnAndIsFoundByText) {
  StatementTexts texts;
  ServerStatements server;
  const auto one = texts.intern("SELECT 1", "");
  const auto two = texts.intern("SELECT 2", "");
  const std::string first = server.add(one).name;
  const std::string second = server.add(two).name;
  EXPECT_NE(first, second);
  EXPECT_TRUE(first.starts_with("pgv_"));
  // Another client's copy of the same SQL finds the same server statement.
  const StatementText copy{"SELECT 1", "", StatementText::hash_of("SELECT 1", "")};
  ASSERT_NE(server.use(copy), nullptr);
  EXPECT_EQ(server.use(copy)->name, first);
  server.forget(first);
  EXPECT_EQ(server.use(copy), nullptr);
}

TEST(ServerStatements, TheLeastRecentlyUsedGoesFirst) {
  StatementTexts texts;
  ServerStatements server;
  std::vector<StatementRef> refs;
  std::vector<std::string> names;
  for (int i = 0; i < 4; ++i) {
    refs.push_back(texts.intern("SELECT " + std::to_string(i), ""));
    names.push_back(server.add(refs.back()).name);
  }
  server.use(*refs[0]);  // 0 is now the most recently used
  EXPECT_EQ(server.evict_oldest(), names[1]);
  EXPECT_EQ(server.evict_oldest(), names[2]);
  EXPECT_EQ(server.size(), 2u);
  EXPECT_EQ(server.use(*refs[1]), nullptr) << "evicted: prepared again when needed";
  server.clear();
  EXPECT_NE(server.add(refs[1]).name, names[1]) << "a name is never used twice";
}

TEST(ClientStatements, AFailedParseRemovesTheNameOnlyIfItStillNamesItsText) {
  StatementTexts texts;
  ClientStatements client;
  const auto failed = texts.intern("SELEKT 1", "");
  const auto again = texts.intern("SELECT 1", "");
  client.add("S_1", again);  // prepared again before the error came back
  client.remove_if("S_1", failed);
  EXPECT_NE(client.find("S_1"), nullptr);
  client.remove_if("S_1", again);
  EXPECT_EQ(client.find("S_1"), nullptr);
}

}  // namespace
}  // namespace pgvigil::proxy::relay
