// ServerParameters: the server's ParameterStatus messages encoded once for every startup reply.
#include "proxy/server_parameters.hpp"

#include <gtest/gtest.h>

#include <string>

#include "proxy/wire/backend_messages.hpp"

namespace pgvigil::proxy {
namespace {

ServerParameters::List reported() {
  return {{"application_name", ""}, {"DateStyle", "ISO, MDY"}, {"server_version", "15.18"}};
}

TEST(ServerParameters, TheMessagesAreEncodedOnceBackToBackAsReported) {
  const ServerParameters parameters(reported());
  std::string expected;
  std::size_t ends[3];
  for (std::size_t i = 0; i < 3; ++i) {
    wire::append_parameter_status(expected, reported()[i].first, reported()[i].second);
    ends[i] = expected.size();
  }
  EXPECT_EQ(parameters.encoded(), expected);
  ASSERT_EQ(parameters.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(parameters.begins_at(i), i == 0 ? 0 : ends[i - 1]) << i;
    EXPECT_EQ(parameters.ends_at(i), ends[i]) << i;
    EXPECT_EQ(parameters.encoded()[parameters.begins_at(i)], 'S') << i;
  }
}

TEST(ServerParameters, AParameterIsFoundByItsNameInAnyCase) {
  const ServerParameters parameters(reported());
  EXPECT_EQ(parameters.index_of("datestyle"), 1u);
  EXPECT_EQ(parameters.index_of("DATESTYLE"), 1u);
  EXPECT_EQ(parameters.name(parameters.index_of("server_version")), "server_version");
  EXPECT_EQ(parameters.index_of("date_style"), ServerParameters::npos);
  EXPECT_EQ(parameters.index_of(""), ServerParameters::npos);
}

TEST(ServerParameters, NoneKnownEncodesNothing) {
  const ServerParameters parameters;
  EXPECT_TRUE(parameters.empty());
  EXPECT_TRUE(parameters.encoded().empty());
  EXPECT_EQ(parameters.index_of("datestyle"), ServerParameters::npos);
}

TEST(ServerParameters, AtMostKMostAreKept) {
  ServerParameters::List many;
  for (std::size_t i = 0; i < ServerParameters::kMost + 3; ++i) {
    many.emplace_back("p" + std::to_string(i), "v");
  }
  const ServerParameters parameters(std::move(many));
  EXPECT_EQ(parameters.size(), ServerParameters::kMost);
  EXPECT_EQ(parameters.index_of("p" + std::to_string(ServerParameters::kMost)),
            ServerParameters::npos);
}

}  // namespace
}  // namespace pgvigil::proxy
