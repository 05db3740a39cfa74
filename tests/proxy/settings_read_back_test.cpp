// Settings read back from the server after a transaction that changed them in SQL
// (proxy/relay/settings_read_back): the answer's form, and what becomes the client's settings.
#include "proxy/relay/settings_read_back.hpp"

#include <gtest/gtest.h>

namespace pgvigil::proxy::relay {
namespace {

TEST(SettingsReadBack, TheAnswerIsReadByItsCounts) {
  // Values with the separators in them, an empty value, a name ending in digits.
  const auto read = parse_session_settings(
      "11:search_path12:\"a:b\", \"1:x\"17:statement_timeout2:1s" "4:log10:");
  ASSERT_TRUE(read);
  EXPECT_EQ(*read, (SettingMap{{"search_path", "\"a:b\", \"1:x\""},
                               {"statement_timeout", "1s"},
                               {"log1", ""}}));
  EXPECT_EQ(parse_session_settings(""), SettingMap{});
  // A value of several bytes per character is counted in bytes (octet_length).
  EXPECT_EQ(parse_session_settings("16:application_name5:\xC3\xA9t\xC3\xA9"),
            (SettingMap{{"application_name", "\xC3\xA9t\xC3\xA9"}}));
}

TEST(SettingsReadBack, AnAnswerInAnyOtherFormIsRefused) {
  for (const char* malformed : {"11:search_path", "11:search_path4:ab", "x:y1:z", "0:1:a",
                                "11search_path1:a", "99:search_path1:a", "11:search_path1"}) {
    EXPECT_FALSE(parse_session_settings(malformed)) << malformed;
  }
}

TEST(SettingsReadBack, WhatWasReadBecomesTheClientsSettingsBesideTheReportedOnes) {
  const SettingMap current{{"datestyle", "German, DMY"},
                           {"search_path", std::string(1, kSqlValueMark) + "old"},
                           {"work_mem", "4MB"}};
  // work_mem was RESET in the transaction; search_path and lock_timeout changed.
  const SettingMap read{{"search_path", "a, b"}, {"lock_timeout", "3s"}};
  const auto merged = merge_read_back(current, SettingMap{}, read);
  ASSERT_TRUE(merged);
  EXPECT_EQ(merged->settings, (SettingMap{{"datestyle", "German, DMY"},
                                          {"search_path", "a, b"},
                                          {"lock_timeout", "3s"}}));
  EXPECT_TRUE(merged->connection_carries_them);
}

TEST(SettingsReadBack, AReportedSettingIsLeftToItsParameterStatus) {
  // The server's ParameterStatus already gave the client's DateStyle; a value read for it (in
  // whatever case pg_settings spells it) does not replace it.
  const SettingMap current{{"datestyle", "ISO, MDY"}};
  const auto merged = merge_read_back(current, SettingMap{}, {{"datestyle", "German, DMY"}});
  ASSERT_TRUE(merged);
  EXPECT_EQ(merged->settings, current);
}

TEST(SettingsReadBack, AStartupSettingTheSessionLostIsAskedForAgain) {
  const SettingMap startup{{"statement_timeout", "4321"}, {"application_name", "app"}};
  const SettingMap current = startup;
  const auto kept = merge_read_back(current, startup, {{"statement_timeout", "4321ms"}});
  ASSERT_TRUE(kept);
  EXPECT_EQ(kept->settings.at("statement_timeout"), "4321ms");
  EXPECT_TRUE(kept->connection_carries_them);
  // RESET statement_timeout: a direct connection would fall back to the startup value.
  const auto reset = merge_read_back(current, startup, SettingMap{});
  ASSERT_TRUE(reset);
  EXPECT_EQ(reset->settings, startup);
  EXPECT_FALSE(reset->connection_carries_them);
}

TEST(SettingsReadBack, ARoleTakenUnseenIsNotASetting) {
  EXPECT_FALSE(merge_read_back({}, {}, {{"role", "lowpriv"}}));
  EXPECT_FALSE(merge_read_back({}, {}, {{"session_authorization", "lowpriv"}}));
}

}  // namespace
}  // namespace pgvigil::proxy::relay
