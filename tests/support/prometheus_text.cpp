#include "tests/support/prometheus_text.hpp"

#include <cctype>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace pgvigil::testing {
namespace {

// A cursor over one sample line; every parse error names the line.
class LineParser {
 public:
  LineParser(std::string_view line, int number) : line_(line), number_(number) {}

  PrometheusSample parse() {
    PrometheusSample sample;
    sample.name = identifier(/*metric=*/true);
    if (peek() == '{') sample.labels = labels();
    skip_spaces();
    sample.value = number(token());
    skip_spaces();
    if (!at_end()) number(token());  // timestamp: validated, not kept
    skip_spaces();
    if (!at_end()) error("unexpected text after the value");
    return sample;
  }

 private:
  [[noreturn]] void error(const std::string& what) const {
    throw std::invalid_argument("prometheus text line " + std::to_string(number_) + ": " + what +
                                ": " + std::string(line_));
  }
  bool at_end() const { return pos_ >= line_.size(); }
  char peek() const { return at_end() ? '\0' : line_[pos_]; }
  void skip_spaces() {
    while (!at_end() && (line_[pos_] == ' ' || line_[pos_] == '\t')) ++pos_;
  }
  void expect(char c) {
    if (peek() != c) error(std::string("expected '") + c + "'");
    ++pos_;
  }

  std::string identifier(bool metric) {
    const auto start = pos_;
    while (!at_end()) {
      const char c = line_[pos_];
      const bool ok = std::isalpha(static_cast<unsigned char>(c)) || c == '_' ||
                      (metric && c == ':') ||
                      (pos_ > start && std::isdigit(static_cast<unsigned char>(c)));
      if (!ok) break;
      ++pos_;
    }
    if (pos_ == start) error(metric ? "expected a metric name" : "expected a label name");
    return std::string(line_.substr(start, pos_ - start));
  }

  Labels labels() {
    expect('{');
    Labels result;
    skip_spaces();
    while (peek() != '}') {
      std::string name = identifier(/*metric=*/false);
      skip_spaces();
      expect('=');
      skip_spaces();
      std::string value = quoted();
      if (!result.emplace(std::move(name), std::move(value)).second) error("duplicate label");
      skip_spaces();
      if (peek() == ',') {
        ++pos_;  // a trailing comma before '}' is allowed by the format
        skip_spaces();
      } else if (peek() != '}') {
        error("expected ',' or '}'");
      }
    }
    expect('}');
    return result;
  }

  std::string quoted() {
    expect('"');
    std::string value;
    while (true) {
      if (at_end()) error("unterminated label value");
      const char c = line_[pos_++];
      if (c == '"') return value;
      if (c != '\\') {
        value += c;
        continue;
      }
      if (at_end()) error("unterminated escape");
      const char escaped = line_[pos_++];
      if (escaped == 'n') {
        value += '\n';
      } else if (escaped == '\\' || escaped == '"') {
        value += escaped;
      } else {
        error("unknown escape");
      }
    }
  }

  std::string_view token() {
    const auto start = pos_;
    while (!at_end() && line_[pos_] != ' ' && line_[pos_] != '\t') ++pos_;
    return line_.substr(start, pos_ - start);
  }

  double number(std::string_view text) {
    if (text == "+Inf" || text == "Inf") return std::numeric_limits<double>::infinity();
    if (text == "-Inf") return -std::numeric_limits<double>::infinity();
    if (text == "NaN") return std::numeric_limits<double>::quiet_NaN();
    if (text.empty()) error("expected a value");
    const std::string copy(text);
    std::size_t used = 0;
    double value = 0;
    try {
      value = std::stod(copy, &used);
    } catch (const std::exception&) {
      error("bad number '" + copy + "'");
    }
    if (used != copy.size()) error("bad number '" + copy + "'");
    return value;
  }

  std::string_view line_;
  int number_;
  std::size_t pos_ = 0;
};

}  // namespace

std::vector<PrometheusSample> parse_prometheus_text(std::string_view text) {
  std::vector<PrometheusSample> samples;
  int number = 0;
  while (!text.empty()) {
    const auto end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
    ++number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const auto first = line.find_first_not_of(" \t");
    if (first == std::string_view::npos || line[first] == '#') continue;
    samples.push_back(LineParser(line.substr(first), number).parse());
  }
  return samples;
}

std::optional<double> sample_value(const std::vector<PrometheusSample>& samples,
                                   std::string_view name, const Labels& labels) {
  std::optional<double> sum;
  for (const auto& sample : samples) {
    if (sample.name != name) continue;
    bool match = true;
    for (const auto& [key, value] : labels) {
      const auto found = sample.labels.find(key);
      if (found == sample.labels.end() || found->second != value) {
        match = false;
        break;
      }
    }
    if (match) sum = sum.value_or(0) + sample.value;
  }
  return sum;
}

std::optional<double> sample_value(std::string_view text, std::string_view name,
                                   const Labels& labels) {
  return sample_value(parse_prometheus_text(text), name, labels);
}

}  // namespace pgvigil::testing
