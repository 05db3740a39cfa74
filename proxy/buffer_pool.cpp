#include "proxy/buffer_pool.hpp"

namespace pgvigil::proxy {
namespace {

// A few spare buffers per worker cover the sessions relaying at one moment; beyond that,
// returned buffers are freed so a burst does not pin memory.
constexpr std::size_t kMaxSpareBuffers = 64;

std::vector<std::unique_ptr<RelayBuffer>>& spare_buffers() {
  thread_local std::vector<std::unique_ptr<RelayBuffer>> spare;
  return spare;
}

}  // namespace

void BufferLease::take() {
  if (buffer_) return;
  auto& spare = spare_buffers();
  if (spare.empty()) {
    buffer_ = std::make_unique<RelayBuffer>();
  } else {
    buffer_ = std::move(spare.back());
    spare.pop_back();
  }
}

void BufferLease::give_back() {
  if (!buffer_) return;
  auto& spare = spare_buffers();
  if (spare.size() < kMaxSpareBuffers) spare.push_back(std::move(buffer_));
  buffer_.reset();
}

}  // namespace pgvigil::proxy
