#pragma once
// Named prepared statements in transaction pooling. A client's statement lives, under a name of
// pgvigil's own, on whichever server connections it has run on; these are the two records that
// make that work. Pure: no I/O.
//
// - StatementText: what the server prepares (the query and its parameter types), shared by
//   every client and connection that uses the same SQL (interned per route).
// - ClientStatements: one client's names for its statements.
// - ServerStatements: what pgvigil has prepared on one server connection, under which name,
//   least recently used first, so clients that prepare the same SQL share it there and a limit
//   can close the coldest.

#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace pgvigil::proxy::relay {

struct StatementText {
  std::string query;
  std::string parameter_types;  // raw, as in Parse: int16 count, int32 OIDs
  std::size_t hash = 0;
  // The SQL mentions DEALLOCATE or DISCARD: run, it may close the connection's statements.
  bool closes_statements = false;

  static std::size_t hash_of(std::string_view query, std::string_view parameter_types);
  bool same(std::string_view other_query, std::string_view other_types) const {
    return query == other_query && parameter_types == other_types;
  }
};
using StatementRef = std::shared_ptr<const StatementText>;

// The shared copies of one route's statement texts. On the route's worker only.
class StatementTexts {
 public:
  StatementRef intern(std::string_view query, std::string_view parameter_types);

 private:
  std::unordered_multimap<std::size_t, std::weak_ptr<const StatementText>> texts_;
  std::size_t inserts_since_sweep_ = 0;
};

// One client's named statements.
class ClientStatements {
 public:
  // nullptr when the client has no statement of that name.
  const StatementRef* find(std::string_view name) const;
  void add(std::string name, StatementRef text) { by_name_[std::move(name)] = std::move(text); }
  void remove(std::string_view name);
  // Removes `name` only while it still names `text` (a Parse that failed, unless the client has
  // prepared the name again since).
  void remove_if(std::string_view name, const StatementRef& text);
  void clear() { by_name_.clear(); }
  std::size_t size() const { return by_name_.size(); }

 private:
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view name) const {
      return std::hash<std::string_view>{}(name);
    }
  };
  std::unordered_map<std::string, StatementRef, Hash, std::equal_to<>> by_name_;
};

// What pgvigil prepared on one server connection.
class ServerStatements {
 public:
  struct Entry {
    StatementRef text;
    std::string name;  // pgvigil's name on the server: "pgv_<n>", unique on the connection
  };

  // The entry for this text, moved to the most recently used end; nullptr when not prepared.
  Entry* use(const StatementText& text);
  // A new entry for a Parse pgvigil is about to send, most recently used.
  Entry& add(StatementRef text);
  // The server does not have it after all (its Parse failed, or was skipped after an error).
  void forget(std::string_view name);
  // Forgets the least recently used entry and returns its name, for a Close. Not when empty.
  std::string evict_oldest();
  // The server's statement of that name is stale (its plan cannot serve the table as it is
  // now): forgotten, so its text is prepared again under a new name, and kept for a Close.
  void retire(std::string_view name);
  // Retired names still to be closed on the server; take_retired() empties the list.
  bool has_retired() const { return !retired_.empty(); }
  std::vector<std::string> take_retired() { return std::move(retired_); }
  // A retired name whose Close the server skipped: closed another time.
  void keep_for_close(std::string name) { retired_.push_back(std::move(name)); }
  // The server closed them all (DISCARD ALL, DEALLOCATE ALL). Names are not used again.
  void clear() {
    order_.clear();
    by_text_.clear();
    retired_.clear();
  }
  std::size_t size() const { return order_.size(); }

 private:
  struct TextKey {
    const StatementText* text;
    bool operator==(const TextKey& other) const {
      return text->same(other.text->query, other.text->parameter_types);
    }
  };
  struct TextKeyHash {
    std::size_t operator()(const TextKey& key) const { return key.text->hash; }
  };
  std::list<Entry> order_;  // least recently used first
  std::unordered_map<TextKey, std::list<Entry>::iterator, TextKeyHash> by_text_;
  std::uint64_t next_name_ = 0;
  std::vector<std::string> retired_;
};

}  // namespace pgvigil::proxy::relay
