#pragma once
// A parsed value or the reason there is none. A stand-in for std::expected (C++23), which the
// toolchain (GCC 12) lacks; parsers return it because malformed input is an expected branch,
// not an exception.

#include <string>
#include <utility>
#include <variant>

namespace pgvigil::proxy {

template <typename T>
class ParseResult {
 public:
  static ParseResult ok(T value) { return ParseResult(std::in_place_index<0>, std::move(value)); }
  static ParseResult fail(std::string error) {
    return ParseResult(std::in_place_index<1>, std::move(error));
  }

  bool has_value() const { return state_.index() == 0; }
  explicit operator bool() const { return has_value(); }

  // Precondition: has_value().
  const T& value() const& { return std::get<0>(state_); }
  T&& value() && { return std::get<0>(std::move(state_)); }
  const T& operator*() const& { return value(); }
  const T* operator->() const { return &value(); }

  // Precondition: !has_value(). One line, suitable for a log or an ErrorResponse.
  const std::string& error() const { return std::get<1>(state_); }

 private:
  template <std::size_t kIndex, typename U>
  ParseResult(std::in_place_index_t<kIndex> tag, U&& content)
      : state_(tag, std::forward<U>(content)) {}

  // Index-based so that T = std::string stays unambiguous.
  std::variant<T, std::string> state_;
};

}  // namespace pgvigil::proxy
