#include "proxy/cancel_registry.hpp"

#include <openssl/rand.h>

#include <array>
#include <cstring>
#include <vector>

namespace pgvigil::proxy {

std::optional<CancelKey> random_cancel_key() {
  std::array<unsigned char, 8> bytes{};
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) return std::nullopt;
  CancelKey key;
  std::memcpy(&key.process_id, bytes.data(), 4);
  std::memcpy(&key.secret, bytes.data() + 4, 4);
  // Positive and never 0, like a real backend's pid; the secret keeps all 32 bits.
  key.process_id = (key.process_id & 0x7fffffffu) | 1u;
  return key;
}

std::optional<CancelKey> CancelRegistry::add(std::weak_ptr<CancelTarget> target) {
  while (true) {
    const auto key = random_cancel_key();
    if (!key) return std::nullopt;
    std::lock_guard lock(mutex_);
    if (sessions_.emplace(key->packed(), target).second) return key;
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
