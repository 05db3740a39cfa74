// Named prepared statements in transaction pooling (proxy/relay/statement_relay): what the relay
// sends the server for a client's extended-protocol messages, and what the client sees back.
#include "proxy/relay/statement_relay.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "proxy/wire/extended_query.hpp"
#include "tests/proxy/wire_bytes.hpp"

namespace pgvigil::proxy::relay {
namespace {

using Disposition = ResponseQueue::Disposition;
using wire::test::kExecute;
using wire::test::kSync;
using wire::test::parse;
using wire::test::query;

std::string bind(std::string_view statement) {
  std::string out;
  // No parameters, no result formats: int16 0 three times.
  wire::append_bind(out, "", statement, std::string("\0\0\0\0\0\0", 6));
  return out;
}
std::string describe(char kind, std::string_view name) {
  std::string out;
  wire::append_describe(out, kind, name);
  return out;
}
std::string close(char kind, std::string_view name) {
  std::string out;
  wire::append_close(out, kind, name);
  return out;
}

// One message as the server receives it: its type and the statement it names ("" for none).
struct Sent {
  char type;
  std::string name;
  bool operator==(const Sent&) const = default;
};
std::ostream& operator<<(std::ostream& out, const Sent& sent) {
  return out << sent.type << ':' << sent.name;
}

// Reads back what a plan sends the server.
std::vector<Sent> decode(ForwardPlan& plan) {
  std::string bytes;
  for (const auto& piece : plan.pieces()) bytes.append(piece.data(), piece.size());
  std::vector<Sent> sent;
  std::size_t at = 0;
  while (at + 5 <= bytes.size()) {
    const char type = bytes[at];
    const auto length = (std::uint32_t{static_cast<unsigned char>(bytes[at + 1])} << 24) |
                        (std::uint32_t{static_cast<unsigned char>(bytes[at + 2])} << 16) |
                        (std::uint32_t{static_cast<unsigned char>(bytes[at + 3])} << 8) |
                        std::uint32_t{static_cast<unsigned char>(bytes[at + 4])};
    const std::span<const char> body(bytes.data() + at + 5, length - 4);
    std::string name;
    if (type == 'P') name = std::string(wire::parse_parse(body)->statement);
    if (type == 'B') name = std::string(wire::parse_bind(body)->statement);
    if (type == 'D' || type == 'C') name = std::string(wire::parse_target(body)->name);
    if (type == 'Q') name = std::string(body.data(), body.size() - 1);
    sent.push_back({type, name});
    at += 1 + length;
  }
  EXPECT_EQ(at, bytes.size()) << "whole messages only";
  return sent;
}

// A client of one server connection, its messages fed one by one as the forwarder would.
struct Client {
  StatementRelay relay;
  ServerStatements& server;

  std::vector<Sent> send(const std::vector<std::string>& messages) {
    ForwardPlan plan;
    plan.clear();
    for (const auto& message : messages) {
      Edit edit(plan, {});
      const MessageHeader header{message[0], static_cast<std::uint32_t>(message.size() - 5),
                                 message.size() > 5 ? message[5] : -1,   0,
                                 message.size(),                   false};
      EXPECT_TRUE(relay.on_client_message(header, message, edit, server));
      if (!edit.dropped()) plan.add_copy(message);
    }
    return decode(plan);
  }
  // What the client sees of the server's answers (types), with pgvigil's made ones in place.
  std::string sees(const std::string& answers) {
    std::string seen;
    const auto made = [&](std::string_view bytes) { seen += bytes[0]; };
    for (char type : answers) {
      const auto disposition = relay.on_server_message(type, server, made);
      EXPECT_NE(disposition, Disposition::desync) << type;
      if (disposition == Disposition::pass) seen += type;
    }
    relay.take_made(made);
    return seen;
  }
};

TEST(StatementRelay, ANamedParseIsPreparedUnderPgvigilsNameAndAnsweredAsUsual) {
  StatementTexts texts;
  ServerStatements server;
  Client client{StatementRelay(texts, 10), server};
  const auto sent = client.send({parse("S_1", "SELECT 1"), bind("S_1"), kExecute, kSync});
  ASSERT_EQ(sent.size(), 4u);
  EXPECT_EQ(sent[0], (Sent{'P', "pgv_1"}));
  EXPECT_EQ(sent[1], (Sent{'B', "pgv_1"}));
  EXPECT_EQ(client.sees("12DCZ"), "12DCZ");
  EXPECT_TRUE(client.relay.answered());
  EXPECT_TRUE(client.relay.holds_statements());
}

TEST(StatementRelay, ClientsPreparingTheSameSqlShareTheServersStatement) {
  StatementTexts texts;
  ServerStatements server;
  Client first{StatementRelay(texts, 10), server};
  Client second{StatementRelay(texts, 10), server};
  first.send({parse("S_1", "SELECT 1"), kSync});
  EXPECT_EQ(first.sees("1Z"), "1Z");
  first.relay.lease_ended();
  // The second client's Parse does not reach the server; its ParseComplete is made in place.
  const auto sent = second.send({parse("a", "SELECT 1"), bind("a"), kExecute, kSync});
  EXPECT_EQ(sent, (std::vector<Sent>{{'B', "pgv_1"}, {'E', ""}, {'S', ""}}));
  EXPECT_EQ(second.sees("2DCZ"), "12DCZ");
}

TEST(StatementRelay, AConnectionThatLacksTheStatementGetsItBeforeTheBind) {
  StatementTexts texts;
  ServerStatements first_connection;
  ServerStatements second_connection;
  StatementRelay relay(texts, 10);
  Client on_first{std::move(relay), first_connection};
  on_first.send({parse("S_1", "SELECT 1"), kSync});
  on_first.sees("1Z");
  on_first.relay.lease_ended();
  // The next transaction runs on another connection.
  Client on_second{std::move(on_first.relay), second_connection};
  const auto sent = on_second.send({bind("S_1"), describe('S', "S_1"), kExecute, kSync});
  EXPECT_EQ(sent, (std::vector<Sent>{{'P', "pgv_1"}, {'B', "pgv_1"}, {'D', "pgv_1"}, {'E', ""},
                                     {'S', ""}}));
  // pgvigil's ParseComplete is swallowed: the client sees what a direct connection sends.
  EXPECT_EQ(on_second.sees("12tTDCZ"), "2tTDCZ");
}

TEST(StatementRelay, ACloseOfAClientsStatementIsAnsweredByPgvigil) {
  StatementTexts texts;
  ServerStatements server;
  Client client{StatementRelay(texts, 10), server};
  client.send({parse("S_1", "SELECT 1"), kSync});
  client.sees("1Z");
  const auto sent = client.send({close('S', "S_1"), close('P', "portal"), kSync});
  EXPECT_EQ(sent, (std::vector<Sent>{{'C', "portal"}, {'S', ""}}));
  EXPECT_EQ(client.sees("3Z"), "33Z");
  EXPECT_FALSE(client.relay.holds_statements());
  EXPECT_EQ(server.size(), 1u) << "the server's statement stays for whoever prepares it next";
}

TEST(StatementRelay, TheLimitClosesTheLeastRecentlyUsedStatementOnTheServer) {
  StatementTexts texts;
  ServerStatements server;
  Client client{StatementRelay(texts, 2), server};
  client.send({parse("a", "SELECT 1"), parse("b", "SELECT 2"), kSync});
  client.sees("11Z");
  client.send({bind("a"), kSync});  // b is now the least recently used
  client.sees("2Z");
  const auto sent = client.send({parse("c", "SELECT 3"), kSync});
  EXPECT_EQ(sent, (std::vector<Sent>{{'C', "pgv_2"}, {'P', "pgv_3"}, {'S', ""}}));
  EXPECT_EQ(client.sees("31Z"), "1Z");
  // b is prepared again when the client uses it.
  const auto again = client.send({bind("b"), kSync});
  EXPECT_EQ(again, (std::vector<Sent>{{'C', "pgv_1"}, {'P', "pgv_4"}, {'B', "pgv_4"}, {'S', ""}}));
  EXPECT_EQ(client.sees("312Z"), "2Z");
}

TEST(StatementRelay, AParseThatFailsLeavesTheClientWithoutTheStatement) {
  StatementTexts texts;
  ServerStatements server;
  Client client{StatementRelay(texts, 10), server};
  client.send({parse("S_1", "SELEKT 1"), bind("S_1"), kExecute, kSync});
  EXPECT_EQ(client.sees("EZ"), "EZ");
  EXPECT_FALSE(client.relay.holds_statements());
  EXPECT_EQ(server.size(), 0u);
  // A Bind of it now is the server's to refuse, under the client's own name.
  EXPECT_EQ(client.send({bind("S_1"), kSync}), (std::vector<Sent>{{'B', "S_1"}, {'S', ""}}));
}

TEST(StatementRelay, TheUnnamedStatementAndPortalsPassUntouched) {
  StatementTexts texts;
  ServerStatements server;
  Client client{StatementRelay(texts, 10), server};
  const auto sent = client.send(
      {parse("", "SELECT 1"), bind(""), describe('P', ""), kExecute, close('S', ""), kSync});
  EXPECT_EQ(sent, (std::vector<Sent>{{'P', ""}, {'B', ""}, {'D', ""}, {'E', ""}, {'C', ""},
                                     {'S', ""}}));
  EXPECT_EQ(client.sees("12TDC3Z"), "12TDC3Z");
  EXPECT_EQ(server.size(), 0u);
}

TEST(StatementRelay, DeallocateOfAClientsStatementIsAnsweredInPlace) {
  StatementTexts texts;
  ServerStatements server;
  Client client{StatementRelay(texts, 10), server};
  client.send({parse("S_1", "SELECT 1"), kSync});
  client.sees("1Z");
  EXPECT_EQ(client.send({query("deallocate S_1")}), (std::vector<Sent>{{'Q', "deallocate S_1"}}))
      << "unquoted, the name folds to lower case: not the client's S_1";
  client.sees("EZ");
  EXPECT_EQ(client.send({query("DEALLOCATE \"S_1\";")}), (std::vector<Sent>{{'Q', ""}}));
  EXPECT_EQ(client.sees("IZ"), "CZ");
  EXPECT_FALSE(client.relay.holds_statements());
}

TEST(StatementRelay, DiscardAllClearsTheClientsStatementsAndTheConnectionsRecord) {
  StatementTexts texts;
  ServerStatements server;
  Client client{StatementRelay(texts, 10), server};
  client.send({parse("S_1", "SELECT 1"), kSync});
  client.sees("1Z");
  EXPECT_EQ(client.send({query("DISCARD ALL")}), (std::vector<Sent>{{'Q', "DISCARD ALL"}}));
  EXPECT_EQ(client.sees("CZ"), "CZ");
  EXPECT_FALSE(client.relay.holds_statements());
  EXPECT_EQ(server.size(), 0u);
}

TEST(StatementRelay, DeallocateAsTheUnnamedStatementOfABatchIsAnsweredInPlace) {
  StatementTexts texts;
  ServerStatements server;
  Client client{StatementRelay(texts, 10), server};
  client.send({parse("_pg3_0", "SELECT 1"), kSync});
  client.sees("1Z");
  // psycopg 3 sends its own DEALLOCATE through the extended protocol: an empty statement goes
  // in its place, and its EmptyQueryResponse becomes DEALLOCATE's CommandComplete.
  EXPECT_EQ(client.send({parse("", "DEALLOCATE _pg3_0"), bind(""), describe('P', ""), kExecute,
                         kSync}),
            (std::vector<Sent>{{'P', ""}, {'B', ""}, {'D', ""}, {'E', ""}, {'S', ""}}));
  EXPECT_EQ(client.sees("12nIZ"), "12nCZ");
  EXPECT_FALSE(client.relay.holds_statements());
  EXPECT_EQ(server.size(), 1u) << "the server's statement may serve other clients";
  // The next unnamed statement is an ordinary one again.
  client.send({parse("", "SELECT 2"), bind(""), kExecute, kSync});
  EXPECT_EQ(client.sees("12DCZ"), "12DCZ");
}

TEST(StatementRelay, DeallocateAllAsTheUnnamedStatementClearsTheRecords) {
  StatementTexts texts;
  ServerStatements server;
  Client client{StatementRelay(texts, 10), server};
  client.send({parse("_pg3_0", "SELECT 1"), kSync});
  client.sees("1Z");
  client.send({parse("", "DEALLOCATE ALL"), bind(""), kExecute, kSync});
  EXPECT_EQ(client.sees("12CZ"), "12CZ");
  EXPECT_FALSE(client.relay.holds_statements());
  EXPECT_EQ(server.size(), 0u) << "the server closed them all";
}

TEST(StatementRelay, SqlThatMentionsDeallocateClearsTheConnectionsRecord) {
  StatementTexts texts;
  ServerStatements server;
  Client client{StatementRelay(texts, 10), server};
  client.send({parse("S_1", "SELECT 1"), kSync});
  client.sees("1Z");
  client.send({query("ROLLBACK; DEALLOCATE ALL")});
  EXPECT_EQ(client.sees("CCZ"), "CCZ");
  EXPECT_EQ(server.size(), 0u) << "what the server closed is not known: prepared again";
  // The client's statement is prepared again where it runs next.
  EXPECT_EQ(client.send({bind("S_1"), kExecute, kSync}),
            (std::vector<Sent>{{'P', "pgv_2"}, {'B', "pgv_2"}, {'E', ""}, {'S', ""}}));
}

TEST(DeallocateCommand, MentionsFindsEitherWordAnywhere) {
  EXPECT_TRUE(mentions_deallocate("select 1; DeAllocate x"));
  EXPECT_TRUE(mentions_deallocate("DISCARD ALL"));
  EXPECT_FALSE(mentions_deallocate("SELECT abalance FROM pgbench_accounts WHERE aid = $1"));
  EXPECT_FALSE(mentions_deallocate("dealloc"));
  // Both cases of the first letter are searched, in any order along the text.
  EXPECT_TRUE(mentions_deallocate("d D dEaLlOcAtE x"));
  EXPECT_TRUE(mentions_deallocate("Dd DdISCARD all"));
  EXPECT_TRUE(mentions_deallocate("deallocate"));
  EXPECT_FALSE(mentions_deallocate("DdDdDd discar D"));
  EXPECT_FALSE(mentions_deallocate(""));
}

TEST(DeallocateCommand, RecognisesOnlyAWholeDeallocateOrDiscardAll) {
  using Kind = DeallocateCommand::Kind;
  EXPECT_EQ(deallocate_command("DEALLOCATE ALL").kind, Kind::all);
  EXPECT_EQ(deallocate_command("  deallocate prepare all ; ").kind, Kind::all);
  EXPECT_EQ(deallocate_command("discard all").kind, Kind::all);
  const auto one = deallocate_command("DEALLOCATE PREPARE Foo");
  EXPECT_EQ(one.kind, Kind::one);
  EXPECT_EQ(one.name, "foo");
  EXPECT_EQ(deallocate_command("DEALLOCATE \"all\"").name, "all");
  EXPECT_EQ(deallocate_command("DEALLOCATE a; SELECT 1").kind, Kind::none);
  EXPECT_EQ(deallocate_command("DISCARD PLANS").kind, Kind::none);
  EXPECT_EQ(deallocate_command("SELECT 'DEALLOCATE ALL'").kind, Kind::none);
  EXPECT_EQ(deallocate_command("DEALLOCATE").kind, Kind::none);
}

}  // namespace
}  // namespace pgvigil::proxy::relay
