// What SQL pins its client to its server connection in transaction pooling
// (proxy/relay/session_state): state that outlives the transaction, read without a parser.
#include "proxy/relay/session_state.hpp"

#include <gtest/gtest.h>

namespace pgvigil::proxy::relay {
namespace {

TEST(SessionState, StateThatOutlivesItsTransactionPinsByCause) {
  EXPECT_EQ(session_state_in("SET ROLE lowpriv"), PinCause::role);
  EXPECT_EQ(session_state_in("set session authorization bob"), PinCause::role);
  EXPECT_EQ(session_state_in("SET statement_timeout = 1"), PinCause::setting);
  EXPECT_EQ(session_state_in("SET SESSION search_path TO evil"), PinCause::setting);
  EXPECT_EQ(session_state_in("SELECT set_config('search_path', 'x', false)"), PinCause::setting);
  EXPECT_EQ(session_state_in("LISTEN x"), PinCause::listen);
  EXPECT_EQ(session_state_in("SELECT pg_advisory_lock(42)"), PinCause::advisory_lock);
  EXPECT_EQ(session_state_in("select pg_try_advisory_lock_shared(1)"), PinCause::advisory_lock);
  EXPECT_EQ(session_state_in("CREATE TEMP TABLE t (x int)"), PinCause::temporary_table);
  EXPECT_EQ(session_state_in("create temporary table t as select 1"), PinCause::temporary_table);
  EXPECT_EQ(session_state_in("SELECT 1 INTO TEMP t"), PinCause::temporary_table);
  EXPECT_EQ(session_state_in("DECLARE c CURSOR WITH HOLD FOR SELECT 1"), PinCause::cursor);
  EXPECT_EQ(session_state_in("PREPARE p AS SELECT 1"), PinCause::sql_prepare);
  EXPECT_EQ(session_state_in("DO $$BEGIN SET ROLE x; END$$"), PinCause::unclassified);
  EXPECT_EQ(session_state_in("LOAD 'auto_explain'"), PinCause::unclassified);
}

TEST(SessionState, FoundAfterCommentsAndInAnyStatementOfAQuery) {
  EXPECT_EQ(session_state_in("/* app */ SET ROLE x"), PinCause::role);
  EXPECT_EQ(session_state_in("-- note\nLISTEN x"), PinCause::listen);
  EXPECT_EQ(session_state_in("BEGIN; SET ROLE x; COMMIT"), PinCause::role);
  EXPECT_EQ(session_state_in("SELECT 1;LISTEN y"), PinCause::listen);
}

TEST(SessionState, StateThatEndsWithItsTransactionOrFollowsTheClientPinsNothing) {
  for (const char* sql :
       {"SELECT abalance FROM pgbench_accounts WHERE aid = $1", "SET LOCAL statement_timeout = 5",
        "SET TRANSACTION ISOLATION LEVEL "
        "SERIALIZABLE",
        "SET CONSTRAINTS ALL DEFERRED", "SET TimeZone = 'UTC'", "SET TIME ZONE 'UTC'",
        "SET NAMES 'UTF8'", "set application_name = 'x'", "SET DateStyle TO German",
        "SELECT pg_advisory_xact_lock(1)", "SELECT pg_advisory_unlock(1)", "UNLISTEN *",
        "PREPARE TRANSACTION 'x'", "DISCARD ALL", "DECLARE c CURSOR FOR SELECT 1",
        "UPDATE t SET x = 1", "INSERT INTO t (settings) VALUES ('listen')", "RESET ALL",
        "SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;"}) {
    EXPECT_EQ(session_state_in(sql), std::nullopt) << sql;
  }
}

TEST(SessionState, ALoneSetIsReadAsNameAndValueAsWritten) {
  const auto set = plain_set("  SET search_path TO evil, \"Public\" ; ");
  ASSERT_TRUE(set);
  EXPECT_EQ(set->name, "search_path");
  EXPECT_EQ(set->value, "evil, \"Public\"");
  EXPECT_EQ(plain_set("set session myapp.tenant = 'acme'")->name, "myapp.tenant");
  EXPECT_EQ(plain_set("SET statement_timeout=5")->value, "5");
  for (const char* not_plain :
       {"SET LOCAL statement_timeout = 5", "SET ROLE x", "SET SESSION AUTHORIZATION x",
        "SET TimeZone = 'UTC'", "SET statement_timeout = 5; SET ROLE x",
        "SET search_path = a -- comment", "SET x", "SELECT 1"}) {
    EXPECT_FALSE(plain_set(not_plain)) << not_plain;
  }
}

TEST(SessionState, ResetsAndDiscardsLeaveTheConnectionsSettingsUnknown) {
  EXPECT_TRUE(resets_settings("RESET search_path"));
  EXPECT_TRUE(resets_settings("SELECT 1; reset all"));
  EXPECT_TRUE(resets_settings("DISCARD ALL"));
  EXPECT_FALSE(resets_settings("SELECT 'reset'"));
  EXPECT_FALSE(resets_settings("SET search_path = x"));
}

TEST(SessionState, ALoneResetNamesWhatItPutsBack) {
  EXPECT_EQ(reset_target("RESET search_path;"), "search_path");
  EXPECT_EQ(reset_target("reset all"), "");
  EXPECT_EQ(reset_target("DISCARD ALL"), "");
  EXPECT_EQ(reset_target("RESET a; RESET b"), std::nullopt);
  EXPECT_EQ(reset_target("DISCARD PLANS"), std::nullopt);
}

TEST(SessionState, AWordInALiteralMayPinButNeverHidesState) {
  // Errs towards pinning: a literal's words are read too.
  EXPECT_EQ(session_state_in("SELECT 'a temp value'"), PinCause::temporary_table);
  EXPECT_EQ(session_state_in("SELECT ';SET ROLE x'"), PinCause::role);
}

}  // namespace
}  // namespace pgvigil::proxy::relay
