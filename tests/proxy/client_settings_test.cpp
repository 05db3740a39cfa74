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

}  // namespace
}  // namespace pgvigil::proxy
