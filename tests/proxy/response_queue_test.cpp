// The answers a server connection owes (proxy/relay/response_queue): pgvigil's own answers made
// at their turn, its requests' answers swallowed, and an error's skip to the Sync honoured.
#include "proxy/relay/response_queue.hpp"

#include <gtest/gtest.h>

#include <string>

namespace pgvigil::proxy::relay {
namespace {

using Disposition = ResponseQueue::Disposition;

// Feeds server message types; returns what the client would see: the server's types that pass,
// with pgvigil's made answers ('1', '3') in their places, and '!' for a desync.
std::string client_sees(ResponseQueue& queue, const std::string& server,
                        ServerStatements* statements = nullptr, ClientStatements* client = nullptr) {
  ServerStatements no_statements;
  ClientStatements no_names;
  std::string seen;
  const auto made = [&](std::string_view bytes) { seen += bytes[0]; };
  for (char type : server) {
    switch (queue.on_server_message(type, statements ? *statements : no_statements,
                                    client ? *client : no_names, made)) {
      case Disposition::pass:
        seen += type;
        break;
      case Disposition::swallow:
        break;
      case Disposition::desync:
        seen += '!';
        break;
    }
  }
  queue.take_made(made);
  return seen;
}

TEST(ResponseQueue, AnExtendedBatchPassesWhole) {
  ResponseQueue queue;
  for (auto owed : {Owed::parse, Owed::bind, Owed::describe_portal, Owed::execute, Owed::sync}) {
    queue.expect({owed});
  }
  EXPECT_EQ(client_sees(queue, "12TDDCZ"), "12TDDCZ");
  EXPECT_TRUE(queue.empty());
}

TEST(ResponseQueue, TheAnswerToPgvigilsOwnParseIsSwallowed) {
  ServerStatements statements;
  auto text = std::make_shared<const StatementText>(StatementText{"SELECT 1", "", 1});
  const auto& entry = statements.add(text);
  ResponseQueue queue;
  queue.expect({Owed::own_parse, entry.name});
  queue.expect({Owed::bind});
  queue.expect({Owed::execute});
  queue.expect({Owed::sync});
  EXPECT_EQ(client_sees(queue, "12DCZ", &statements), "2DCZ");
  EXPECT_NE(statements.use(*text), nullptr) << "the server has it";
}

TEST(ResponseQueue, AMadeAnswerTakesTheServersPlace) {
  ResponseQueue queue;
  queue.expect({Owed::made_parse_complete});  // the connection had the statement already
  queue.expect({Owed::bind});
  queue.expect({Owed::execute});
  queue.expect({Owed::sync});
  queue.expect({Owed::made_close_complete});  // the client closed it, answered by pgvigil
  queue.expect({Owed::sync});
  EXPECT_EQ(client_sees(queue, "2CZZ"), "12CZ3Z");
}

TEST(ResponseQueue, AMadeAnswerWithNothingOwedBeforeItIsMadeAtOnce) {
  ResponseQueue queue;
  queue.expect({Owed::made_parse_complete});
  queue.expect({Owed::made_close_complete});
  std::string made;
  EXPECT_TRUE(queue.made_answer_due());
  queue.take_made([&](std::string_view bytes) {
    EXPECT_EQ(bytes.size(), 5u);
    made += bytes[0];
  });
  EXPECT_EQ(made, "13");
  EXPECT_TRUE(queue.empty());
}

TEST(ResponseQueue, AnErrorSkipsToTheSyncAndUndoesWhatWasSkipped) {
  ServerStatements statements;
  auto failing = std::make_shared<const StatementText>(StatementText{"SELEKT", "", 1});
  auto skipped = std::make_shared<const StatementText>(StatementText{"SELECT 2", "", 2});
  const std::string failing_name = statements.add(failing).name;
  const std::string skipped_name = statements.add(skipped).name;
  ClientStatements client;
  client.add("S_1", failing);
  ResponseQueue queue;
  queue.expect({Owed::parse, failing_name, "S_1", failing});
  queue.expect({Owed::bind});
  queue.expect({Owed::made_close_complete});  // a direct server would skip it too: not made
  queue.expect({Owed::own_parse, skipped_name});
  queue.expect({Owed::execute});
  queue.expect({Owed::sync});
  EXPECT_EQ(client_sees(queue, "EZ", &statements, &client), "EZ");
  EXPECT_EQ(statements.use(*failing), nullptr);
  EXPECT_EQ(statements.use(*skipped), nullptr) << "the server skipped pgvigil's Parse";
  EXPECT_EQ(client.find("S_1"), nullptr) << "the client's Parse failed: it has no S_1";
  EXPECT_TRUE(queue.empty());
}

TEST(ResponseQueue, AnErrorBeforeItsSyncIsPlannedSkipsWhatIsPlannedUntilThen) {
  ResponseQueue queue;
  queue.expect({Owed::parse});
  queue.expect({Owed::bind});
  EXPECT_EQ(client_sees(queue, "E"), "E");
  EXPECT_FALSE(queue.empty()) << "still skipping";
  EXPECT_FALSE(queue.expect({Owed::made_parse_complete})) << "skipped: nothing answers it";
  EXPECT_FALSE(queue.expect({Owed::execute}));
  EXPECT_TRUE(queue.expect({Owed::sync}));
  EXPECT_EQ(client_sees(queue, "Z"), "Z");
  EXPECT_TRUE(queue.empty());
}

TEST(ResponseQueue, ErrorsInsideASimpleQueryOrAtSyncEndWithReadyForQuery) {
  ResponseQueue queue;
  queue.expect({Owed::query});
  queue.expect({Owed::sync});
  queue.expect({Owed::made_close_complete});
  queue.expect({Owed::sync});
  // The query fails, then the Sync's implicit commit fails (a deferred constraint).
  EXPECT_EQ(client_sees(queue, "TDEZEZZ"), "TDEZEZ3Z");
}

TEST(ResponseQueue, DescribingAStatementEndsWithItsRowDescriptionOrNoData) {
  ResponseQueue queue;
  queue.expect({Owed::describe_statement});
  queue.expect({Owed::made_close_complete});
  queue.expect({Owed::describe_statement});
  queue.expect({Owed::sync});
  EXPECT_EQ(client_sees(queue, "tTtnZ"), "tT3tnZ");
}

TEST(ResponseQueue, MessagesOfNoRequestPassAnywhere) {
  ResponseQueue queue;
  queue.expect({Owed::own_parse});
  queue.expect({Owed::sync});
  EXPECT_EQ(client_sees(queue, "NS1AZ"), "NSAZ");
}

TEST(ResponseQueue, AnAnswerNothingWasOwedForIsADesync) {
  ResponseQueue queue;
  EXPECT_EQ(client_sees(queue, "2"), "!");
  queue.expect({Owed::own_parse});
  EXPECT_EQ(client_sees(queue, "2"), "!") << "pgvigil's Parse answered with a BindComplete";
  ResponseQueue idle;
  EXPECT_EQ(client_sees(idle, "E"), "E") << "a FATAL before a close passes";
}

TEST(ResponseQueue, AClientsDeallocateIsAnsweredAsTheServerWouldInItsPlace) {
  ResponseQueue queue;
  queue.expect({Owed::deallocate});  // sent on as an empty query
  std::string seen;
  const auto made = [&](std::string_view bytes) { seen.append(bytes); };
  ServerStatements server;
  ClientStatements client;
  EXPECT_EQ(queue.on_server_message('I', server, client, made), Disposition::swallow);
  EXPECT_EQ(seen, std::string("C\0\0\0\x0f" "DEALLOCATE\0", 16));
  EXPECT_EQ(queue.on_server_message('Z', server, client, made), Disposition::pass);
  EXPECT_TRUE(queue.empty());
}

TEST(ResponseQueue, APipelineThatNeverRunsDryKeepsItsOrder) {
  // A client always a few requests ahead: the queue is never empty, so its answered front must
  // be dropped as it goes, in order, without losing what is still owed.
  ResponseQueue queue;
  queue.expect({Owed::query});
  for (int round = 0; round < 500; ++round) {
    // One more request goes out (a Parse pgvigil answers every third), then the oldest Query
    // is answered: the made answer follows it, in its place.
    const bool made = round % 3 == 0;
    if (made) queue.expect({Owed::made_parse_complete});
    queue.expect({Owed::query});
    EXPECT_EQ(client_sees(queue, "CZ"), made ? "CZ1" : "CZ") << "round " << round;
    ASSERT_FALSE(queue.empty());
  }
  EXPECT_EQ(client_sees(queue, "CZ"), "CZ");
  EXPECT_TRUE(queue.empty());
}

}  // namespace
}  // namespace pgvigil::proxy::relay
