#include "proxy/cancel_registry.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>

#include <array>
#include <cstring>
#include <vector>

namespace pgvigil::proxy {

namespace {

// Every new client needs a key, and RAND_bytes costs about as much for 512 bytes as for 8: a
// lock, a fork check (getpid) and a cipher set-up per call, 2 % of a new connection's CPU when
// drawn one key at a time. So each thread draws the bytes of 64 keys at once. They stay what they
// were: CSPRNG output, each byte used once, wiped once used. A forked child throws its copy
// away (pthread_atfork), so it never hands out the keys its parent will.
constexpr std::size_t kKeyBytes = 8;
constexpr std::size_t kKeysPerDraw = 64;

struct DrawnKeyBytes {
  std::array<unsigned char, kKeyBytes * kKeysPerDraw> bytes{};
  std::size_t next = bytes.size();  // all used: the first key draws

  void discard() {
    OPENSSL_cleanse(bytes.data(), bytes.size());
    next = bytes.size();
  }
  ~DrawnKeyBytes() { discard(); }  // a worker that ends leaves no unused key bytes behind
};
thread_local DrawnKeyBytes t_drawn;

// Only the forking thread lives on in the child: its buffer is the one to discard.
const bool g_discarded_in_forked_children =
    ::pthread_atfork(nullptr, nullptr, [] { t_drawn.discard(); }) == 0;

}  // namespace

std::optional<CancelKey> random_cancel_key() {
  if (t_drawn.next == t_drawn.bytes.size()) {
    // Had pthread_atfork failed (no memory at start-up), one key per draw, as safe as ever.
    const std::size_t draw = g_discarded_in_forked_children ? t_drawn.bytes.size() : kKeyBytes;
    const std::size_t from = t_drawn.bytes.size() - draw;
    if (RAND_bytes(t_drawn.bytes.data() + from, static_cast<int>(draw)) != 1) return std::nullopt;
    t_drawn.next = from;
  }
  unsigned char* bytes = t_drawn.bytes.data() + t_drawn.next;
  t_drawn.next += kKeyBytes;
  CancelKey key;
  std::memcpy(&key.process_id, bytes, 4);
  std::memcpy(&key.secret, bytes + 4, 4);
  OPENSSL_cleanse(bytes, kKeyBytes);
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
