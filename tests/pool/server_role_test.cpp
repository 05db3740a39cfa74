#include "pool/server_role.hpp"

#include <gtest/gtest.h>

namespace pgvigil::pool {
namespace {

const RoleReport kPrimary{ServerRole::primary, false};
const RoleReport kReadOnlyPrimary{ServerRole::primary, true};
const RoleReport kStandby{ServerRole::standby, true};
const RoleReport kUnknown{};

TEST(ServerRole, ReadFromTheParametersPostgresReports) {
  EXPECT_EQ(role_from_parameters("off", "off"), kPrimary);
  EXPECT_EQ(role_from_parameters("off", "on"), kReadOnlyPrimary);
  EXPECT_EQ(role_from_parameters("on", "off"), kStandby);
  // Before PostgreSQL 14: not reported, so the server must be asked.
  EXPECT_EQ(role_from_parameters("", ""), std::nullopt);
}

TEST(ServerRole, ReadFromTheRoleQuery) {
  EXPECT_EQ(role_from_query_value("false,off"), kPrimary);
  EXPECT_EQ(role_from_query_value("false,on"), kReadOnlyPrimary);
  EXPECT_EQ(role_from_query_value("true,on"), kStandby);
  EXPECT_EQ(role_from_query_value("t"), std::nullopt);
  EXPECT_EQ(role_from_query_value("maybe,off"), std::nullopt);
}

TEST(ServerRole, TargetsMatchAsLibpqDefinesThem) {
  using enum TargetSessionAttrs;
  EXPECT_TRUE(role_matches(any, kUnknown, false));
  EXPECT_TRUE(role_matches(read_write, kPrimary, false));
  EXPECT_FALSE(role_matches(read_write, kReadOnlyPrimary, false));
  EXPECT_FALSE(role_matches(read_write, kStandby, false));
  EXPECT_FALSE(role_matches(read_write, kUnknown, false));
  EXPECT_TRUE(role_matches(read_only, kReadOnlyPrimary, false));
  EXPECT_TRUE(role_matches(read_only, kStandby, false));
  EXPECT_FALSE(role_matches(read_only, kPrimary, false));
  EXPECT_TRUE(role_matches(primary, kReadOnlyPrimary, false));
  EXPECT_FALSE(role_matches(primary, kStandby, false));
  EXPECT_TRUE(role_matches(standby, kStandby, false));
  EXPECT_FALSE(role_matches(standby, kPrimary, false));
  // prefer-standby: standbys only in the first pass, anything in the second.
  EXPECT_TRUE(role_matches(prefer_standby, kStandby, true));
  EXPECT_FALSE(role_matches(prefer_standby, kPrimary, true));
  EXPECT_TRUE(role_matches(prefer_standby, kPrimary, false));
}

TEST(ServerRole, TargetNamesRoundTrip) {
  for (const auto target :
       {TargetSessionAttrs::any, TargetSessionAttrs::read_write, TargetSessionAttrs::read_only,
        TargetSessionAttrs::primary, TargetSessionAttrs::standby,
        TargetSessionAttrs::prefer_standby}) {
    EXPECT_EQ(parse_target_session_attrs(to_string(target)), target);
  }
  EXPECT_EQ(parse_target_session_attrs("read_write"), std::nullopt);
}

TEST(ReplicationLag, ReadsTheLagQuerysSecondsAndRefusesAnythingElse) {
  EXPECT_EQ(lag_from_query_value("0"), 0.0);
  EXPECT_DOUBLE_EQ(*lag_from_query_value("12.345678"), 12.345678);
  // A standby's clock behind the primary's makes a replay "from the future": no lag.
  EXPECT_EQ(lag_from_query_value("-0.25"), 0.0);
  EXPECT_FALSE(lag_from_query_value(""));
  EXPECT_FALSE(lag_from_query_value("1.5s"));
  EXPECT_FALSE(lag_from_query_value("t"));
}

}  // namespace
}  // namespace pgvigil::pool
