#include "proxy/startup_gate.hpp"

#include <utility>

namespace pgvigil::proxy {

StartupGate::Ticket& StartupGate::Ticket::operator=(Ticket&& other) noexcept {
  if (this != &other) {
    leave();
    gate_ = std::move(other.gate_);
    entry_ = other.entry_;
  }
  return *this;
}

void StartupGate::Ticket::leave() {
  if (gate_) std::exchange(gate_, nullptr)->leave(entry_);
}

StartupGate::Ticket StartupGate::admit(const std::string& address, std::function<void()> push_out) {
  std::function<void()> pushed[2];
  Ticket ticket;
  {
    std::lock_guard lock(mutex_);
    if (max_per_address_ > 0) {
      const auto count = per_address_.find(address);
      if (count != per_address_.end() && count->second >= max_per_address_) {
        pushed[0] = take_oldest(&address);
      }
    }
    if (max_total_ > 0 && order_.size() >= static_cast<std::size_t>(max_total_)) {
      pushed[1] = take_oldest(nullptr);
    }
    order_.push_back({address, std::move(push_out)});
    if (max_per_address_ > 0) ++per_address_[address];
    ticket.gate_ = shared_from_this();
    ticket.entry_ = std::prev(order_.end());
  }
  for (auto& push : pushed) {
    if (push) push();
  }
  return ticket;
}

void StartupGate::count_left(const std::string& address) {
  if (max_per_address_ <= 0) return;
  const auto count = per_address_.find(address);
  if (count != per_address_.end() && --count->second == 0) per_address_.erase(count);
}

std::function<void()> StartupGate::take_oldest(const std::string* address) {
  auto oldest = order_.begin();
  if (address != nullptr) {
    while (oldest != order_.end() && oldest->address != *address) ++oldest;
  }
  if (oldest == order_.end()) return {};
  auto push = std::move(oldest->push_out);
  oldest->push_out = nullptr;
  oldest->pushed = true;
  count_left(oldest->address);
  // Its ticket still points at it: moved, not freed, until the ticket leaves.
  pushed_.splice(pushed_.end(), order_, oldest);
  ++pushed_out_;
  return push;
}

void StartupGate::leave(Order::iterator entry) {
  std::lock_guard lock(mutex_);
  if (entry->pushed) {
    pushed_.erase(entry);
    return;
  }
  count_left(entry->address);
  order_.erase(entry);
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
