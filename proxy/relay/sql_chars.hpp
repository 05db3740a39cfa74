#pragma once

// The characters of SQL text as PostgreSQL's lexer reads them, for the scans the relay runs
// over every Query and Parse. Inline and ASCII-only on purpose: <cctype>'s functions are calls
// into the C library that consult the locale, and they were a visible part of the relay's
// CPU time in extended-protocol benchmarks; the lexer does not use the locale either.

#include <array>
#include <cstddef>
#include <string_view>

namespace pgvigil::proxy::relay {

// What a byte is to the scans, looked up in one table: a branch per character class showed
// in the relay's profiles (callgrind: about 30 instructions a character of every Query).
enum class SqlCharClass : unsigned char {
  other,    // punctuation, quotes, blanks: passed over
  word,     // a byte of an unquoted identifier or keyword
  comment,  // '-' or '/', which may begin a comment
  end,      // ';', which ends a statement
};

// A byte of an unquoted identifier or keyword: a letter, a digit, '_', '$', or any byte with
// the high bit set (PostgreSQL takes those as letters, so a UTF-8 name is one word).
constexpr bool is_sql_word_byte(unsigned char byte) {
  return (byte >= 'a' && byte <= 'z') || (byte >= 'A' && byte <= 'Z') ||
         (byte >= '0' && byte <= '9') || byte == '_' || byte == '$' || byte >= 0x80;
}

inline constexpr auto kSqlCharClasses = [] {
  std::array<SqlCharClass, 256> classes{};
  for (unsigned byte = 0; byte < classes.size(); ++byte) {
    const auto c = static_cast<unsigned char>(byte);
    classes[byte] = is_sql_word_byte(c)    ? SqlCharClass::word
                    : c == '-' || c == '/' ? SqlCharClass::comment
                    : c == ';'             ? SqlCharClass::end
                                           : SqlCharClass::other;
  }
  return classes;
}();

constexpr SqlCharClass sql_char_class(char c) {
  return kSqlCharClasses[static_cast<unsigned char>(c)];
}

constexpr bool is_sql_word_char(char c) { return sql_char_class(c) == SqlCharClass::word; }

// Keywords fold to lower case by ASCII rules only.
constexpr char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }

// `word`, as written, is the keyword `lower` (given in lower case): ASCII case is ignored.
constexpr bool keyword_is(std::string_view word, std::string_view lower) {
  if (word.size() != lower.size()) return false;
  for (std::size_t i = 0; i < word.size(); ++i) {
    if (ascii_lower(word[i]) != lower[i]) return false;
  }
  return true;
}

// `word`, as written, contains `lower` (given in lower case), ASCII case ignored.
constexpr bool keyword_contains(std::string_view word, std::string_view lower) {
  for (std::size_t at = 0; at + lower.size() <= word.size(); ++at) {
    if (keyword_is(word.substr(at, lower.size()), lower)) return true;
  }
  return false;
}

// White space between SQL words: space, tab, newline, carriage return, form feed, vertical tab.
constexpr bool is_sql_blank(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

}  // namespace pgvigil::proxy::relay
