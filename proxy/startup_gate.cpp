#include "proxy/startup_gate.hpp"

#include <utility>
#include <vector>

namespace pgvigil::proxy {

StartupGate::Ticket& StartupGate::Ticket::operator=(Ticket&& other) noexcept {
  if (this != &other) {
    leave();
    gate_ = std::move(other.gate_);
    id_ = std::exchange(other.id_, 0);
  }
  return *this;
}

void StartupGate::Ticket::leave() {
  if (gate_) std::exchange(gate_, nullptr)->leave(id_);
}

StartupGate::Ticket StartupGate::admit(const std::string& address, std::function<void()> push_out) {
  std::vector<std::function<void()>> pushed;
  Ticket ticket;
  {
    std::lock_guard lock(mutex_);
    auto& from_address = per_address_[address];
    if (max_per_address_ > 0 && from_address >= max_per_address_) {
      pushed.push_back(take_oldest(&address));
    }
    if (max_total_ > 0 && static_cast<int>(order_.size()) >= max_total_) {
      pushed.push_back(take_oldest(nullptr));
    }
    const auto id = next_id_++;
    order_.push_back({id, address, std::move(push_out)});
    by_id_.emplace(id, std::prev(order_.end()));
    ++per_address_[address];
    ticket.gate_ = shared_from_this();
    ticket.id_ = id;
  }
  for (auto& push : pushed) {
    if (push) push();
  }
  return ticket;
}

std::function<void()> StartupGate::take_oldest(const std::string* address) {
  auto oldest = order_.begin();
  if (address != nullptr) {
    while (oldest != order_.end() && oldest->address != *address) ++oldest;
  }
  if (oldest == order_.end()) return {};
  auto push = std::move(oldest->push_out);
  const auto count = per_address_.find(oldest->address);
  if (--count->second == 0) per_address_.erase(count);
  by_id_.erase(oldest->id);
  order_.erase(oldest);
  ++pushed_out_;
  return push;
}

void StartupGate::leave(std::uint64_t id) {
  std::lock_guard lock(mutex_);
  const auto found = by_id_.find(id);
  if (found == by_id_.end()) return;  // pushed out already
  const auto count = per_address_.find(found->second->address);
  if (--count->second == 0) per_address_.erase(count);
  order_.erase(found->second);
  by_id_.erase(found);
}

int StartupGate::in_startup() const {
  std::lock_guard lock(mutex_);
  return static_cast<int>(order_.size());
}

std::uint64_t StartupGate::pushed_out() const {
  std::lock_guard lock(mutex_);
  return pushed_out_;
}

}  // namespace pgvigil::proxy
