#include "proxy/relay/deallocate_command.hpp"

#include <algorithm>

#include "proxy/relay/sql_chars.hpp"

namespace pgvigil::proxy::relay {
namespace {

// The next SQL word of `text` from `at` (letters, digits, _ and $), or a quoted identifier.
// Sets `quoted` when it was one. Empty when there is none.
std::string next_word(std::string_view text, std::size_t& at, bool& quoted) {
  while (at < text.size() && is_sql_blank(text[at])) ++at;
  quoted = false;
  if (at < text.size() && text[at] == '"') {
    const auto close = text.find('"', at + 1);
    // A doubled quote inside a name is left to the server: such a name is not pgvigil's.
    if (close == std::string_view::npos || (close + 1 < text.size() && text[close + 1] == '"')) {
      at = text.size();
      return {};
    }
    quoted = true;
    std::string word(text.substr(at + 1, close - at - 1));
    at = close + 1;
    return word;
  }
  std::string word;
  while (at < text.size() && is_sql_word_char(text[at])) word.push_back(ascii_lower(text[at++]));
  return word;
}

// Only blanks and semicolons are left.
bool rest_is_empty(std::string_view text, std::size_t at) {
  return std::all_of(text.begin() + static_cast<std::ptrdiff_t>(at), text.end(), [](char c) {
    return c == ';' || is_sql_blank(c);
  });
}

}  // namespace

DeallocateCommand deallocate_command(std::string_view query) {
  std::size_t at = 0;
  bool quoted = false;
  const auto first = next_word(query, at, quoted);
  if (quoted) return {};
  if (first == "discard") {
    const auto what = next_word(query, at, quoted);
    if (!quoted && what == "all" && rest_is_empty(query, at)) {
      return {DeallocateCommand::Kind::all, {}};
    }
    return {};
  }
  if (first != "deallocate") return {};
  auto name = next_word(query, at, quoted);
  if (!quoted && name == "prepare") name = next_word(query, at, quoted);
  if (name.empty() || !rest_is_empty(query, at)) return {};
  if (!quoted && name == "all") return {DeallocateCommand::Kind::all, {}};
  return {DeallocateCommand::Kind::one, std::move(name)};
}

bool mentions_deallocate(std::string_view query) {
  // Every Query and unnamed Parse is searched: memchr for the two cases of the first letter
  // passes over most of a query at a few bytes an instruction, where a loop over every
  // character took about 12 (callgrind, pgbench's select).
  constexpr std::string_view kWords[] = {"deallocate", "discard"};
  const auto same_letter = [](char word, char text) { return word == ascii_lower(text); };
  const auto next_d = [&query](std::size_t from, char letter) {
    const auto at = query.find(letter, from);
    return at == std::string_view::npos ? query.size() : at;
  };
  std::size_t lower = next_d(0, 'd');
  std::size_t upper = next_d(0, 'D');
  while (lower < query.size() || upper < query.size()) {
    const auto at = std::min(lower, upper);
    for (const auto word : kWords) {
      if (query.size() - at >= word.size() &&
          std::equal(word.begin(), word.end(), query.begin() + static_cast<std::ptrdiff_t>(at),
                     same_letter)) {
        return true;
      }
    }
    if (at == lower) lower = next_d(at + 1, 'd');
    if (at == upper) upper = next_d(at + 1, 'D');
  }
  return false;
}

}  // namespace pgvigil::proxy::relay
