// Golden files: every file under golden/valid parses; every file under golden/invalid fails with
// the position, key and message its first line announces: "# expect: LINE:COLUMN: key: text".
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "daemon/config_loader.hpp"

namespace pgvigil::daemon {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> yaml_files(const std::string& folder) {
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(fs::path(PGVIGIL_GOLDEN_DIR) / folder)) {
    if (entry.path().extension() == ".yaml") files.push_back(entry.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string test_name(const testing::TestParamInfo<std::string>& info) {
  std::string name = fs::path(info.param).stem().string();
  std::replace_if(
      name.begin(), name.end(), [](char c) { return !std::isalnum(c); }, '_');
  return name;
}

struct Expectation {
  std::string prefix;     // "LINE:COLUMN: key: "
  std::string substring;  // part of the message
};

Expectation read_expectation(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  const std::string marker = "# expect: ";
  if (!line.starts_with(marker)) return {};
  const std::string rest = line.substr(marker.size());
  const std::size_t position_end = rest.find(": ");
  const std::size_t key_end = rest.find(": ", position_end + 2);
  if (position_end == std::string::npos || key_end == std::string::npos) return {};
  return {rest.substr(0, key_end + 2), rest.substr(key_end + 2)};
}

class ValidGoldenTest : public testing::TestWithParam<std::string> {};

TEST_P(ValidGoldenTest, Parses) {
  try {
    const Config config = load_config(GetParam());
    EXPECT_FALSE(config.databases.empty());
  } catch (const ConfigError& e) {
    FAIL() << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(Golden, ValidGoldenTest, testing::ValuesIn(yaml_files("valid")),
                         test_name);

class InvalidGoldenTest : public testing::TestWithParam<std::string> {};

TEST_P(InvalidGoldenTest, FailsWhereAnnounced) {
  const Expectation expected = read_expectation(GetParam());
  ASSERT_FALSE(expected.prefix.empty()) << "first line must be '# expect: LINE:COLUMN: key: text'";
  try {
    load_config(GetParam());
    FAIL() << "parsed without error";
  } catch (const ConfigError& e) {
    const std::string what = e.what();
    EXPECT_TRUE(what.starts_with(GetParam() + ":" + expected.prefix))
        << "got:      " << what << "\nexpected: " << GetParam() << ":" << expected.prefix;
    EXPECT_NE(what.find(expected.substring), std::string::npos)
        << "got: " << what << "\nmissing: " << expected.substring;
  }
}

INSTANTIATE_TEST_SUITE_P(Golden, InvalidGoldenTest, testing::ValuesIn(yaml_files("invalid")),
                         test_name);

}  // namespace
}  // namespace pgvigil::daemon
