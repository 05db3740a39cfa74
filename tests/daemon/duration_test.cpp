#include "daemon/duration.hpp"

#include <gtest/gtest.h>

#include <stdexcept>

namespace pgvigil::daemon {
namespace {

using std::chrono::milliseconds;

TEST(DurationTest, ParsesEveryUnit) {
  EXPECT_EQ(parse_duration("0"), milliseconds{0});
  EXPECT_EQ(parse_duration("0s"), milliseconds{0});
  EXPECT_EQ(parse_duration("500ms"), milliseconds{500});
  EXPECT_EQ(parse_duration("10s"), milliseconds{10'000});
  EXPECT_EQ(parse_duration("30m"), milliseconds{1'800'000});
  EXPECT_EQ(parse_duration("2h"), milliseconds{7'200'000});
}

TEST(DurationTest, RejectsWithAMessageNamingTheUnits) {
  for (const char* text : {"", "5", "10", "s", "5 s", "1.5s", "-1s", "5sec", "5S", "5d", " 5s",
                           "5s ", "99999999999999999999ms", "9223372036854775807h"}) {
    try {
      parse_duration(text);
      ADD_FAILURE() << "accepted '" << text << "'";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("ms, s, m or h"), std::string::npos) << e.what();
    }
  }
}

TEST(DurationTest, SaysWhatIsWrong) {
  EXPECT_THROW(
      {
        try {
          parse_duration("10");
        } catch (const std::invalid_argument& e) {
          EXPECT_NE(std::string(e.what()).find("missing unit"), std::string::npos) << e.what();
          throw;
        }
      },
      std::invalid_argument);
}

TEST(DurationTest, FormatsInTheLargestExactUnit) {
  EXPECT_EQ(format_duration(milliseconds{0}), "0");
  EXPECT_EQ(format_duration(milliseconds{250}), "250ms");
  EXPECT_EQ(format_duration(milliseconds{1500}), "1500ms");
  EXPECT_EQ(format_duration(milliseconds{11'000}), "11s");
  EXPECT_EQ(format_duration(milliseconds{90'000}), "90s");
  EXPECT_EQ(format_duration(milliseconds{1'800'000}), "30m");
  EXPECT_EQ(format_duration(milliseconds{7'200'000}), "2h");
}

TEST(DurationTest, FormatRoundTrips) {
  for (long long ms : {0LL, 1LL, 999LL, 1000LL, 61'000LL, 3'600'000LL, 3'601'000LL}) {
    EXPECT_EQ(parse_duration(format_duration(milliseconds{ms})), milliseconds{ms});
  }
}

}  // namespace
}  // namespace pgvigil::daemon
