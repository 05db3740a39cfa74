// What SQL pins its client to its server connection in transaction pooling
// (proxy/relay/session_state): state that outlives the transaction, read without a parser.
#include "proxy/relay/session_state.hpp"

#include <gtest/gtest.h>

namespace pgvigil::proxy::relay {
namespace {

TEST(SessionState, StateThatOutlivesItsTransactionPinsByCause) {
  EXPECT_EQ(scan_session_state("SET ROLE lowpriv").pin, PinCause::role);
  EXPECT_EQ(scan_session_state("set session authorization bob").pin, PinCause::role);
  // A custom setting, which pg_settings leaves out: it cannot be read back.
  EXPECT_EQ(scan_session_state("BEGIN; SET myapp.tenant = 'acme'; COMMIT").pin, PinCause::setting);
  EXPECT_EQ(scan_session_state("SET SESSION \"MyApp\".key TO 1").pin, PinCause::setting);
  EXPECT_EQ(scan_session_state("SELECT set_config('myapp.tenant', 'x', false)").pin,
            PinCause::setting);
  EXPECT_EQ(scan_session_state("SELECT set_config($1, 'x', false)").pin, PinCause::setting);
  EXPECT_EQ(scan_session_state("SELECT pg_catalog.set_config(name, 'x', false) FROM t").pin,
            PinCause::setting);
  EXPECT_EQ(scan_session_state("LISTEN x").pin, PinCause::listen);
  EXPECT_EQ(scan_session_state("SELECT pg_advisory_lock(42)").pin, PinCause::advisory_lock);
  EXPECT_EQ(scan_session_state("select pg_try_advisory_lock_shared(1)").pin,
            PinCause::advisory_lock);
  EXPECT_EQ(scan_session_state("CREATE TEMP TABLE t (x int)").pin, PinCause::temporary_table);
  EXPECT_EQ(scan_session_state("create temporary table t as select 1").pin,
            PinCause::temporary_table);
  EXPECT_EQ(scan_session_state("SELECT 1 INTO TEMP t").pin, PinCause::temporary_table);
  EXPECT_EQ(scan_session_state("DECLARE c CURSOR WITH HOLD FOR SELECT 1").pin, PinCause::cursor);
  EXPECT_EQ(scan_session_state("PREPARE p AS SELECT 1").pin, PinCause::sql_prepare);
  EXPECT_EQ(scan_session_state("DO $$BEGIN SET ROLE x; END$$").pin, PinCause::unclassified);
  EXPECT_EQ(scan_session_state("LOAD 'auto_explain'").pin, PinCause::unclassified);
}

TEST(SessionState, FoundAfterCommentsAndInAnyStatementOfAQuery) {
  EXPECT_EQ(scan_session_state("/* app */ SET ROLE x").pin, PinCause::role);
  EXPECT_EQ(scan_session_state("-- note\nLISTEN x").pin, PinCause::listen);
  EXPECT_EQ(scan_session_state("BEGIN; SET ROLE x; COMMIT").pin, PinCause::role);
  EXPECT_EQ(scan_session_state("SELECT 1;LISTEN y").pin, PinCause::listen);
  // A lone '-' or '/' is an operator, not a comment: the scan goes on past it.
  EXPECT_EQ(scan_session_state("SELECT 5-1/2;LISTEN z").pin, PinCause::listen);
  EXPECT_EQ(scan_session_state("SELECT 1 -- LISTEN x").pin, std::nullopt);
  EXPECT_EQ(scan_session_state("SELECT 1 /* SET ROLE x */").pin, std::nullopt);
  EXPECT_EQ(scan_session_state("SELECT 1 /* SET ROLE x").pin, std::nullopt);
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
    EXPECT_EQ(scan_session_state(sql).pin, std::nullopt) << sql;
  }
}

TEST(SessionState, SettingsTheServerKnowsAreReadBackNotPinned) {
  for (const char* sql :
       {"SET statement_timeout = 1", "SET SESSION search_path TO evil",
        "BEGIN; SET work_mem = '8MB'; COMMIT",
        "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE",
        "SELECT set_config('search_path', 'x', false)",
        "select pg_catalog.set_config ( 'statement_timeout', '5s', false)"}) {
    const auto state = scan_session_state(sql);
    EXPECT_EQ(state.pin, std::nullopt) << sql;
    EXPECT_TRUE(state.changes_settings) << sql;
  }
  for (const char* sql : {"SET LOCAL statement_timeout = 5", "SET TimeZone = 'UTC'",
                          "SELECT 'set statement_timeout = 1'", "UPDATE t SET x = 1"}) {
    EXPECT_FALSE(scan_session_state(sql).changes_settings) << sql;
  }
}

TEST(SessionState, ALoneSetIsReadAsNameAndValueAsWritten) {
  const auto set = plain_set("  SET search_path TO evil, \"Public\" ; ");
  ASSERT_TRUE(set);
  EXPECT_EQ(set->name, "search_path");
  EXPECT_EQ(set->value, "evil, \"Public\"");
  EXPECT_EQ(plain_set("set session myapp.tenant = 'acme'")->name, "myapp.tenant");
  EXPECT_EQ(plain_set("SET statement_timeout=5")->value, "5");
  EXPECT_EQ(plain_set("\tsEt\nwork_mem TO '8MB'")->name, "work_mem");
  for (const char* not_plain :
       {"SET LOCAL statement_timeout = 5", "SET ROLE x", "SET SESSION AUTHORIZATION x",
        "SET TimeZone = 'UTC'", "SET statement_timeout = 5; SET ROLE x",
        "SET search_path = a -- comment", "SET x", "SELECT 1", "SETTINGS x = 1", "set.x = 1", "SE",
        ""}) {
    EXPECT_FALSE(plain_set(not_plain)) << not_plain;
  }
}

TEST(SessionState, ResetsAndDiscardsLeaveTheConnectionsSettingsUnknown) {
  EXPECT_TRUE(scan_session_state("RESET search_path").resets_settings);
  EXPECT_TRUE(scan_session_state("SELECT 1; reset all").resets_settings);
  EXPECT_TRUE(scan_session_state("DISCARD ALL").resets_settings);
  EXPECT_FALSE(scan_session_state("SELECT 'reset'").resets_settings);
  EXPECT_FALSE(scan_session_state("SET search_path = x").resets_settings);
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
  EXPECT_EQ(scan_session_state("SELECT 'a temp value'").pin, PinCause::temporary_table);
  EXPECT_EQ(scan_session_state("SELECT ';SET ROLE x'").pin, PinCause::role);
}

}  // namespace
}  // namespace pgvigil::proxy::relay
