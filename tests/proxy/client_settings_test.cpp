// The statements that make a server connection carry a client's settings
// (proxy/client_settings): each value reaches the server exactly as the client gave it.
#include "proxy/client_settings.hpp"

#include <gtest/gtest.h>

namespace pgvigil::proxy {
namespace {

TEST(ClientSettings, StartupValuesGoThroughSetConfigAsTheyAre) {
  // SET search_path TO 'a, b' would name one schema "a, b"; set_config takes the list.
  EXPECT_EQ(settings_statements({{"search_path", "a, b"}, {"statement_timeout", "5s"}}, {}),
            "SELECT pg_catalog.set_config('search_path', 'a, b', false), "
            "pg_catalog.set_config('statement_timeout', '5s', false);");
}

TEST(ClientSettings, ValuesWrittenInSqlAreAppliedAsWritten) {
  const std::string written = std::string(1, kSqlValueMark) + "evil, \"Public\"";
  EXPECT_EQ(settings_statements({{"search_path", written}}, {}),
            "SET search_path TO evil, \"Public\";");
}

TEST(ClientSettings, OnlyWhatDiffersIsChangedAndWhatIsNotWantedIsReset) {
  const SettingMap applied{{"application_name", "a"}, {"work_mem", "4MB"}, {"lock_timeout", "1s"}};
  const SettingMap wanted{{"application_name", "a"}, {"work_mem", "8MB"}};
  EXPECT_EQ(settings_statements(wanted, applied),
            "SELECT pg_catalog.set_config('work_mem', '8MB', false);RESET lock_timeout;");
  EXPECT_EQ(settings_statements(wanted, wanted), "");
}

TEST(ClientSettings, LiteralsReadTheSameWhateverStandardConformingStringsSays) {
  EXPECT_EQ(quote_literal("it's"), "'it''s'");
  EXPECT_EQ(quote_literal(R"(C:\dir)"), R"(E'C:\\dir')");
  EXPECT_EQ(quote_literal(R"(\'x)"), R"(E'\\''x')");
}

TEST(ClientSettings, ASettingIsFoundByItsNameInAnyCase) {
  const std::string long_name(70, 'X');  // past PostgreSQL's 63 bytes: looked up all the same
  const SettingMap settings{{"datestyle", "ISO, DMY"}, {std::string(70, 'x'), "long"}};
  ASSERT_NE(find_setting(settings, "DateStyle"), settings.end());
  EXPECT_EQ(find_setting(settings, "DateStyle")->second, "ISO, DMY");
  EXPECT_EQ(find_setting(settings, "datestyle")->second, "ISO, DMY");
  EXPECT_EQ(find_setting(settings, long_name)->second, "long");
  EXPECT_EQ(find_setting(settings, "TimeZone"), settings.end());
  EXPECT_EQ(find_setting(settings, "DateStyl"), settings.end());
  EXPECT_EQ(lower_setting_name("IntervalStyle"), "intervalstyle");
}

TEST(ClientSettings, ReportedSettingsAClientMayChangeAreKnownInAnyCase) {
  EXPECT_TRUE(reported_and_client_settable("DateStyle"));
  EXPECT_TRUE(reported_and_client_settable("datestyle"));
  EXPECT_TRUE(reported_and_client_settable("TIMEZONE"));
  EXPECT_TRUE(reported_and_client_settable("application_name"));
  EXPECT_FALSE(reported_and_client_settable("server_version")) << "the server's, not the client's";
  EXPECT_FALSE(reported_and_client_settable("work_mem")) << "not reported";
  EXPECT_FALSE(reported_and_client_settable("DateStyles"));
}

}  // namespace
}  // namespace pgvigil::proxy
