// When a server connection may go back to the pool (proxy/relay/transaction_tracker): requests
// counted against their ReadyForQuery, extended-protocol batches against their Sync, the last
// transaction status, and the goodbye it keeps from the server.
#include "proxy/relay/transaction_tracker.hpp"

#include <gtest/gtest.h>

namespace pgvigil::proxy::relay {
namespace {

MessageHeader header(char type, int first_body_byte = -1) {
  return {type, first_body_byte < 0 ? 0u : 1u, first_body_byte, 0, 0, false};
}
MessageHeader ready(char status) { return header('Z', status); }

TEST(TransactionTracker, ASimpleQueryIsAnsweredByItsReadyForQuery) {
  TransactionTracker tracker;
  EXPECT_TRUE(tracker.idle_and_answered(true));
  EXPECT_TRUE(tracker.on_client_message(header('Q', 'S')));
  EXPECT_EQ(tracker.pending_ready(), 1);
  EXPECT_FALSE(tracker.idle_and_answered(true));
  tracker.on_server_message(header('T', 0));
  tracker.on_server_message(header('D', 0));
  tracker.on_server_message(header('C', 'S'));
  EXPECT_FALSE(tracker.idle_and_answered(true));
  tracker.on_server_message(ready('I'));
  EXPECT_EQ(tracker.pending_ready(), 0);
  EXPECT_TRUE(tracker.idle_and_answered(true));
  EXPECT_FALSE(tracker.idle_and_answered(false)) << "the client is mid-message";
}

TEST(TransactionTracker, AnExtendedBatchIsOpenUntilItsSyncIsAnswered) {
  TransactionTracker tracker;
  for (char type : {'P', 'B', 'D', 'E'})
    EXPECT_TRUE(tracker.on_client_message(header(type, 0)));
  EXPECT_EQ(tracker.pending_ready(), 0);
  EXPECT_FALSE(tracker.idle_and_answered(true)) << "no Sync yet: the batch is open";
  EXPECT_TRUE(tracker.on_client_message(header('S')));
  EXPECT_EQ(tracker.pending_ready(), 1);
  tracker.on_server_message(ready('I'));
  EXPECT_TRUE(tracker.idle_and_answered(true));
}

TEST(TransactionTracker, InsideATransactionTheConnectionStays) {
  TransactionTracker tracker;
  tracker.on_client_message(header('Q', 'B'));
  tracker.on_server_message(ready('T'));
  EXPECT_EQ(tracker.status(), 'T');
  EXPECT_FALSE(tracker.idle_and_answered(true));
  tracker.on_client_message(header('Q', 'S'));
  tracker.on_server_message(ready('E'));
  EXPECT_EQ(tracker.status(), 'E');
  EXPECT_FALSE(tracker.idle_and_answered(true));
  tracker.on_client_message(header('Q', 'R'));
  tracker.on_server_message(ready('I'));
  EXPECT_TRUE(tracker.idle_and_answered(true));
}

TEST(TransactionTracker, PipelinedRequestsAreAnsweredInTurn) {
  TransactionTracker tracker;
  tracker.on_client_message(header('Q', 'S'));
  tracker.on_client_message(header('Q', 'S'));
  tracker.on_server_message(ready('I'));
  EXPECT_EQ(tracker.pending_ready(), 1);
  EXPECT_FALSE(tracker.idle_and_answered(true));
  tracker.on_server_message(ready('I'));
  EXPECT_TRUE(tracker.idle_and_answered(true));
}

TEST(TransactionTracker, TerminateEndsTheSession) {
  TransactionTracker tracker;
  EXPECT_FALSE(tracker.on_client_message(header('X')));
  EXPECT_EQ(tracker.refusal(), TransactionTracker::Refusal::terminate);
}

TEST(TransactionTracker, CountsQueriesAndTransactionsOnceEach) {
  TransactionTracker tracker;
  tracker.on_client_message(header('Q', 'S'));
  tracker.on_server_message(ready('I'));
  tracker.on_client_message(header('E', 0));
  tracker.on_client_message(header('S'));
  tracker.on_server_message(ready('I'));
  const auto counts = tracker.take_counts();
  EXPECT_EQ(counts.queries, 2u);
  EXPECT_EQ(counts.transactions, 2u);
  const auto again = tracker.take_counts();
  EXPECT_EQ(again.queries, 0u);
  EXPECT_EQ(again.transactions, 0u);
}

TEST(TransactionTracker, CopyDataPassesWithoutChangingAnything) {
  TransactionTracker tracker;
  tracker.on_client_message(header('Q', 'C'));
  tracker.on_server_message(header('G', 0));
  for (char type : {'d', 'd', 'c'}) EXPECT_TRUE(tracker.on_client_message(header(type, 0)));
  EXPECT_EQ(tracker.pending_ready(), 1);
  tracker.on_server_message(header('C', 'C'));
  tracker.on_server_message(ready('I'));
  EXPECT_TRUE(tracker.idle_and_answered(true));
}

}  // namespace
}  // namespace pgvigil::proxy::relay
