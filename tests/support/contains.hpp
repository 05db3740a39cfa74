#pragma once
// Whether a page (a /metrics page, a log) has a piece of text anywhere in it.

#include <string_view>

namespace pgvigil::testing {

inline bool contains(std::string_view page, std::string_view text) {
  return page.find(text) != std::string_view::npos;
}

}  // namespace pgvigil::testing
