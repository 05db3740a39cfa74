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
  const std::string first = server.add(one, 1).name;
  const std::string second = server.add(two, 1).name;
  EXPECT_NE(first, second);
  EXPECT_TRUE(first.starts_with("pgv_"));
  // Another client's copy of the same SQL finds the same server statement.
  const StatementText copy{"SELECT 1", "", StatementText::hash_of("SELECT 1", "")};
  ASSERT_NE(server.use(copy, 2), nullptr);
  EXPECT_EQ(server.use(copy, 2)->name, first);
  server.forget(first);
  EXPECT_EQ(server.use(copy, 2), nullptr);
}

TEST(ServerStatements, TheLimitClosesTheLeastRecentlyUsedThatNoLiveBatchNeeds) {
  StatementTexts texts;
  ServerStatements server;
  std::vector<StatementRef> refs;
  std::vector<std::string> names;
  for (int i = 0; i < 4; ++i) {
    refs.push_back(texts.intern("SELECT " + std::to_string(i), ""));
    names.push_back(server.add(refs.back(), static_cast<std::uint64_t>(i + 1)).name);
    server.confirm(names.back());
  }
  EXPECT_FALSE(server.evict_beyond(4, 1)) << "within the limit";
  server.use(*refs[0], 5);  // 0 is now the most recently used
  // Batches from 2 on are live: 1 (used by batch 2) must stay; 2 and 3 were used by 3 and 4.
  EXPECT_FALSE(server.evict_beyond(3, 2)) << "every candidate is needed by a live batch";
  const auto evicted = server.evict_beyond(3, 5);
  ASSERT_TRUE(evicted);
  EXPECT_EQ(*evicted, names[1]) << "the least recently used goes first";
  EXPECT_EQ(server.size(), 3u);
  // An unconfirmed one (its Parse still in flight) is never closed.
  const auto fresh = texts.intern("SELECT 99", "");
  server.add(fresh, 6);
  EXPECT_EQ(*server.evict_beyond(3, 7), names[2]);
}

}  // namespace
}  // namespace pgvigil::proxy::relay
