#pragma once
// The SQL that closes prepared statements (DEALLOCATE, DISCARD ALL), read well enough to keep
// the relay's records of clients' statements true. Pure.

#include <string>
#include <string_view>

namespace pgvigil::proxy::relay {

// What a simple Query does to a client's statements, when it is one statement that does.
struct DeallocateCommand {
  enum class Kind { none, one, all } kind = Kind::none;
  std::string name;  // for one: the statement, as the server would fold it
};
// DEALLOCATE [PREPARE] name | ALL, DISCARD ALL; anything else (several statements too) is none.
DeallocateCommand deallocate_command(std::string_view query);
// The words DEALLOCATE or DISCARD appear anywhere in `query` (any case): it may close
// statements even when it is not one command deallocate_command() reads.
bool mentions_deallocate(std::string_view query);

}  // namespace pgvigil::proxy::relay
