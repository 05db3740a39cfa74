#include "proxy/relay/session_state.hpp"

#include <algorithm>
#include <array>
#include <string>

#include "proxy/client_settings.hpp"
#include "proxy/relay/sql_chars.hpp"

namespace pgvigil::proxy::relay {
namespace {

// Reads the words of SQL text one at a time, as written (compared with keyword_is), skipping
// comments; notes which word begins a statement (the first, and the first after each
// semicolon). Words are views into the text: the scan runs over every Query and Parse, and
// copying each word lower-cased showed in profiles of the relay.
class Words {
 public:
  explicit Words(std::string_view text) : text_(text) {}

  // What follows the last word read, as written.
  std::string_view rest() const { return text_.substr(at_); }

  // The next word, or false at the end.
  bool next(std::string_view& word, bool& starts_statement) {
    word = {};
    // Locals, not the members: a char read may alias any object, so the compiler would store
    // and reload a member position around every byte.
    const char* const text = text_.data();
    const std::size_t size = text_.size();
    std::size_t at = at_;
    while (at < size) {
      switch (sql_char_class(text[at])) {
        case SqlCharClass::other:
          ++at;
          break;
        case SqlCharClass::end:
          statement_begins_ = true;
          ++at;
          break;
        case SqlCharClass::comment:
          at = past_comment(at);
          break;
        case SqlCharClass::word: {
          const auto begin = at;
          while (++at < size && is_sql_word_char(text[at])) {
          }
          at_ = at;
          word = text_.substr(begin, at - begin);
          starts_statement = statement_begins_;
          statement_begins_ = false;
          return true;
        }
      }
    }
    at_ = at;
    return false;
  }

 private:
  // `at` is a '-' or '/': where the comment it begins ends, or the next character when it
  // begins none.
  std::size_t past_comment(std::size_t at) const {
    const char c = text_[at];
    const bool pair = at + 1 < text_.size();
    if (c == '-' && pair && text_[at + 1] == '-') {
      const auto end = text_.find('\n', at);
      return end == std::string_view::npos ? text_.size() : end;
    }
    if (c == '/' && pair && text_[at + 1] == '*') {
      const auto end = text_.find("*/", at + 2);
      return end == std::string_view::npos ? text_.size() : end + 2;
    }
    return at + 1;
  }

  std::string_view text_;
  std::size_t at_ = 0;
  bool statement_begins_ = true;
};

// A setting the server reports with ParameterStatus: a client's SET of one follows the client
// (ClientSession::adopt_reported_setting), so it pins nothing. "time" is SET TIME ZONE, "names"
// SET NAMES (client_encoding).
bool reported_setting(std::string_view name) {
  return keyword_is(name, "time") || keyword_is(name, "names") ||
         reported_and_client_settable(name);
}

// What a statement beginning with SET does to the session.
enum class SetEffect : std::uint8_t {
  none,            // lasts its transaction, or the server reports the setting
  role,            // SET ROLE, SET SESSION AUTHORIZATION
  setting,         // a setting the server knows: read back at the transaction's end
  custom_setting,  // a custom one (myapp.key): missing from pg_settings, cannot be read back
};

// A name that goes on past the word just read ("myapp" of myapp.key or "MyApp".key) is a
// custom setting's.
bool custom_name_follows(const Words& words) {
  const auto rest = words.rest();
  return rest.starts_with('.') || rest.starts_with("\".");
}

// `words` is after SET.
SetEffect set_statement(Words& words) {
  std::string_view word;
  bool starts = false;
  if (!words.next(word, starts)) return SetEffect::none;
  // SET LOCAL lasts its transaction; SET TRANSACTION and SET CONSTRAINTS too.
  if (keyword_is(word, "local") || keyword_is(word, "transaction") ||
      keyword_is(word, "constraints")) {
    return SetEffect::none;
  }
  if (keyword_is(word, "role")) return SetEffect::role;
  if (keyword_is(word, "session")) {
    if (!words.next(word, starts)) return SetEffect::setting;
    if (keyword_is(word, "authorization") || keyword_is(word, "role")) return SetEffect::role;
    if (keyword_is(word, "characteristics")) return SetEffect::setting;  // default_transaction_*
  }
  if (custom_name_follows(words)) return SetEffect::custom_setting;
  return reported_setting(word) ? SetEffect::none : SetEffect::setting;
}

// `rest` follows the word set_config: a setting the server knows when its name is a plain
// literal without a dot ('search_path'); anything else (a custom name, an expression) is not
// known to be readable back.
SetEffect set_config_call(std::string_view rest) {
  std::size_t at = 0;
  while (at < rest.size() && is_sql_blank(rest[at])) ++at;
  if (at >= rest.size() || rest[at] != '(') return SetEffect::custom_setting;
  ++at;
  while (at < rest.size() && is_sql_blank(rest[at])) ++at;
  if (at >= rest.size() || rest[at] != '\'') return SetEffect::custom_setting;
  const auto end = rest.find('\'', at + 1);
  if (end == std::string_view::npos) return SetEffect::custom_setting;
  const auto name = rest.substr(at + 1, end - at - 1);
  const bool plain = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return is_sql_word_char(c) && c != '$' && static_cast<unsigned char>(c) < 0x80;
  });
  return plain ? SetEffect::setting : SetEffect::custom_setting;
}

}  // namespace

std::string_view to_string(PinCause cause) {
  switch (cause) {
    case PinCause::setting:
      return "setting";
    case PinCause::role:
      return "role";
    case PinCause::listen:
      return "listen";
    case PinCause::advisory_lock:
      return "advisory_lock";
    case PinCause::temporary_table:
      return "temporary_table";
    case PinCause::cursor:
      return "cursor";
    case PinCause::sql_prepare:
      return "sql_prepare";
    case PinCause::prepared_statement:
      return "prepared_statement";
    case PinCause::unclassified:
      return "unclassified";
  }
  return "unclassified";
}

std::optional<PlainSet> plain_set(std::string_view sql) {
  std::size_t at = 0;
  const auto skip_blanks = [&] {
    while (at < sql.size() && is_sql_blank(sql[at])) ++at;
  };
  // A word of letters, digits, '_', '$' and (for a custom setting's name) '.', lower-cased.
  const auto word = [&] {
    std::string read;
    skip_blanks();
    while (at < sql.size() && (is_sql_word_char(sql[at]) || sql[at] == '.')) {
      read.push_back(ascii_lower(sql[at++]));
    }
    return read;
  };
  // Runs on every Query outside a transaction, most of which are no SET: told apart before
  // anything is copied.
  skip_blanks();
  const auto set_end = at + 3;
  if (!keyword_is(sql.substr(at, 3), "set") ||
      (set_end < sql.size() && (is_sql_word_char(sql[set_end]) || sql[set_end] == '.'))) {
    return std::nullopt;
  }
  at = set_end;
  auto name = word();
  if (name == "session") name = word();
  // What set_statement() tells apart: lasting a transaction, a role, a reported setting.
  if (name.empty() || name == "local" || name == "transaction" || name == "constraints" ||
      name == "role" || name == "session" || name == "authorization" || name == "characteristics" ||
      reported_setting(name)) {
    return std::nullopt;
  }
  skip_blanks();
  if (at < sql.size() && sql[at] == '=') {
    ++at;
  } else if (word() != "to") {
    return std::nullopt;
  }
  auto value = sql.substr(at);
  while (!value.empty() && (is_sql_blank(value.back()) || value.back() == ';')) value.remove_suffix(1);
  while (!value.empty() && is_sql_blank(value.front())) value.remove_prefix(1);
  // One statement and nothing that hides the end of one: it is run again as it is.
  if (value.empty() || value.find(';') != std::string_view::npos ||
      value.find("--") != std::string_view::npos || value.find("/*") != std::string_view::npos) {
    return std::nullopt;
  }
  return PlainSet{std::move(name), std::string(value)};
}

std::optional<std::string> reset_target(std::string_view sql) {
  Words words(sql);
  std::string_view first;
  std::string_view second;
  std::string_view more;
  bool starts = false;
  if (!words.next(first, starts) || !words.next(second, starts)) return std::nullopt;
  const bool alone = !words.next(more, starts);
  if (!alone) return std::nullopt;
  const bool reset = keyword_is(first, "reset");
  if ((reset || keyword_is(first, "discard")) && keyword_is(second, "all")) return std::string();
  if (!reset) return std::nullopt;
  std::string setting(second.size(), '\0');
  std::transform(second.begin(), second.end(), setting.begin(), ascii_lower);
  return setting;
}

std::span<const std::string_view> pin_cause_names() {
  static const auto names = [] {
    std::array<std::string_view, std::size(kPinCauses)> all{};
    for (std::size_t i = 0; i < all.size(); ++i) all[i] = to_string(kPinCauses[i]);
    return all;
  }();
  return names;
}

SessionState scan_session_state(std::string_view sql) {
  SessionState found;
  Words words(sql);
  std::string_view word;
  bool starts = false;
  std::string_view statement;  // the first word of the statement the scan is in
  // Ends at the first cause to pin: a pinned client's connection is reset when it leaves, so
  // whether it also reset settings no longer matters.
  const auto pin = [&found](PinCause cause) {
    found.pin = cause;
    return found;
  };
  while (words.next(word, starts)) {
    if (starts) {
      statement = word;
      if (keyword_is(word, "set")) {
        const auto effect = set_statement(words);
        if (effect == SetEffect::role) return pin(PinCause::role);
        if (effect == SetEffect::custom_setting) return pin(PinCause::setting);
        if (effect == SetEffect::setting) found.changes_settings = true;
        continue;
      }
      if (keyword_is(word, "reset") || keyword_is(word, "discard")) found.resets_settings = true;
      if (keyword_is(word, "listen")) return pin(PinCause::listen);
      if (keyword_is(word, "do") || keyword_is(word, "load")) return pin(PinCause::unclassified);
      if (keyword_is(word, "prepare")) {
        // PREPARE TRANSACTION ends its transaction: nothing is left in the session.
        if (words.next(word, starts) && !keyword_is(word, "transaction")) {
          return pin(PinCause::sql_prepare);
        }
      }
      continue;
    }
    if (keyword_is(word, "set_config")) {
      if (set_config_call(words.rest()) == SetEffect::custom_setting) {
        return pin(PinCause::setting);
      }
      found.changes_settings = true;
    }
    // pg_advisory_lock, pg_try_advisory_lock and their _shared forms; the _xact_ ones end
    // with their transaction.
    if (keyword_contains(word, "advisory_lock")) return pin(PinCause::advisory_lock);
    if (keyword_is(word, "temp") || keyword_is(word, "temporary")) {
      return pin(PinCause::temporary_table);
    }
    if (keyword_is(word, "hold") && keyword_is(statement, "declare")) return pin(PinCause::cursor);
  }
  return found;
}

}  // namespace pgvigil::proxy::relay
