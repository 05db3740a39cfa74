#pragma once
// Relay buffers, lent to a session only while it relays a transaction, so an idle client holds
// none. One free list per worker thread (thread_local): no locks, and buffers stay warm in that
// core's cache.

#include <array>
#include <memory>
#include <span>
#include <vector>

namespace pgvigil::proxy {

inline constexpr std::size_t kRelayBufferSize = 32 * 1024;
using RelayBuffer = std::array<char, kRelayBufferSize>;

class BufferLease {
 public:
  BufferLease();
  ~BufferLease();
  BufferLease(const BufferLease&) = delete;
  BufferLease& operator=(const BufferLease&) = delete;
  std::span<char> span() { return {buffer_->data(), buffer_->size()}; }

 private:
  std::unique_ptr<RelayBuffer> buffer_;
};

}  // namespace pgvigil::proxy
