#pragma once
// Relay buffers, lent to a session only while it relays (or has just relayed) a transaction, so
// an idle client holds none. One free list per worker thread (thread_local): no locks, and
// buffers stay warm in that core's cache.

#include <array>
#include <memory>
#include <span>
#include <vector>

namespace pgvigil::proxy {

inline constexpr std::size_t kRelayBufferSize = 32 * 1024;
using RelayBuffer = std::array<char, kRelayBufferSize>;

// A slot for one relay buffer: empty (8 bytes) until take(), empty again after give_back() or
// destruction. Must be emptied on the thread that filled it.
class BufferLease {
 public:
  BufferLease() = default;
  ~BufferLease() { give_back(); }
  BufferLease(const BufferLease&) = delete;
  BufferLease& operator=(const BufferLease&) = delete;

  void take();       // no-op when already held
  void give_back();  // no-op when empty
  bool held() const { return buffer_ != nullptr; }
  std::span<char> span() { return {buffer_->data(), buffer_->size()}; }

 private:
  std::unique_ptr<RelayBuffer> buffer_;
};

}  // namespace pgvigil::proxy
