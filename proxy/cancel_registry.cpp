#include "proxy/cancel_registry.hpp"

#include <vector>

namespace pgvigil::proxy {

CancelKey CancelRegistry::add(std::weak_ptr<CancelTarget> target) {
  std::lock_guard lock(mutex_);
  while (true) {
    const auto bits = random_();
    // Positive 31-bit process ids, like a real backend's; the secret is what protects it.
    CancelKey key{static_cast<std::uint32_t>(bits >> 33) | 1u, static_cast<std::uint32_t>(bits)};
    if (sessions_.emplace(key.packed(), target).second) return key;
  }
}

void CancelRegistry::remove(CancelKey key) {
  std::lock_guard lock(mutex_);
  sessions_.erase(key.packed());
}

bool CancelRegistry::cancel(CancelKey key) {
  std::shared_ptr<CancelTarget> target;
  {
    std::lock_guard lock(mutex_);
    auto found = sessions_.find(key.packed());
    if (found == sessions_.end()) return false;
    target = found->second.lock();
  }
  if (!target) return false;
  target->request_cancel();
  return true;
}

void CancelRegistry::shut_down_all(bool forced) {
  std::vector<std::shared_ptr<CancelTarget>> targets;
  {
    std::lock_guard lock(mutex_);
    targets.reserve(sessions_.size());
    for (const auto& [key, weak] : sessions_) {
      if (auto target = weak.lock()) targets.push_back(std::move(target));
    }
  }
  // Outside the lock: a session's own unregistration takes it.
  for (const auto& target : targets) target->request_shutdown(forced);
}

}  // namespace pgvigil::proxy
