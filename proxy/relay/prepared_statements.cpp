#include "proxy/relay/prepared_statements.hpp"

#include <functional>

#include "proxy/relay/deallocate_command.hpp"

namespace pgvigil::proxy::relay {

std::size_t StatementText::hash_of(std::string_view query, std::string_view parameter_types) {
  const std::size_t a = std::hash<std::string_view>{}(query);
  const std::size_t b = std::hash<std::string_view>{}(parameter_types);
  return a ^ (b + 0x9e3779b97f4a7c15ULL + (a << 6) + (a >> 2));
}

StatementRef StatementTexts::intern(std::string_view query, std::string_view parameter_types) {
  const auto hash = StatementText::hash_of(query, parameter_types);
  const auto [first, last] = texts_.equal_range(hash);
  for (auto it = first; it != last; ++it) {
    if (auto text = it->second.lock(); text && text->same(query, parameter_types)) return text;
  }
  // Texts nobody holds any more are swept now and then, not on every insert.
  if (++inserts_since_sweep_ >= 256) {
    inserts_since_sweep_ = 0;
    std::erase_if(texts_, [](const auto& entry) { return entry.second.expired(); });
  }
  auto text = std::make_shared<const StatementText>(StatementText{
      std::string(query), std::string(parameter_types), hash, mentions_deallocate(query)});
  texts_.emplace(hash, text);
  return text;
}

const StatementRef* ClientStatements::find(std::string_view name) const {
  const auto found = by_name_.find(name);
  return found == by_name_.end() ? nullptr : &found->second;
}

void ClientStatements::remove(std::string_view name) {
  if (const auto found = by_name_.find(name); found != by_name_.end()) by_name_.erase(found);
}

void ClientStatements::remove_if(std::string_view name, const StatementRef& text) {
  if (const auto found = by_name_.find(name); found != by_name_.end() && found->second == text) {
    by_name_.erase(found);
  }
}

ServerStatements::Entry* ServerStatements::use(const StatementText& text) {
  const auto found = by_text_.find(TextKey{&text});
  if (found == by_text_.end()) return nullptr;
  order_.splice(order_.end(), order_, found->second);
  return &*found->second;
}

ServerStatements::Entry& ServerStatements::add(StatementRef text) {
  auto& entry = order_.emplace_back(Entry{std::move(text), "pgv_" + std::to_string(++next_name_)});
  by_text_[TextKey{entry.text.get()}] = std::prev(order_.end());
  return entry;
}

void ServerStatements::retire(std::string_view name) {
  const auto before = order_.size();
  forget(name);
  if (order_.size() < before) retired_.emplace_back(name);
}

void ServerStatements::forget(std::string_view name) {
  // Only after an error: a walk is fine.
  for (auto it = order_.begin(); it != order_.end(); ++it) {
    if (it->name != name) continue;
    by_text_.erase(TextKey{it->text.get()});
    order_.erase(it);
    return;
  }
}

std::string ServerStatements::evict_oldest() {
  auto oldest = order_.begin();
  auto name = std::move(oldest->name);
  by_text_.erase(TextKey{oldest->text.get()});
  order_.erase(oldest);
  return name;
}

}  // namespace pgvigil::proxy::relay
