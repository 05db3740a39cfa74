#include "proxy/relay/forward_plan.hpp"

namespace pgvigil::proxy::relay {

void ForwardPlan::clear() {
  segments_.clear();
  pieces_.clear();
  storage_.clear();
  resolved_ = true;
  bytes_ = 0;
}

void ForwardPlan::add(Piece piece) {
  if (piece.empty()) return;
  bytes_ += piece.size();
  resolved_ = false;
  if (!segments_.empty()) {
    auto& last = segments_.back();
    if (last.data != nullptr && last.data + last.size == piece.data()) {
      last.size += piece.size();
      return;
    }
  }
  segments_.push_back({piece.data(), 0, piece.size()});
}

void ForwardPlan::add_copy(std::string_view bytes) {
  if (bytes.empty()) return;
  bytes_ += bytes.size();
  resolved_ = false;
  const auto offset = storage_.size();
  storage_.append(bytes);
  if (!segments_.empty()) {
    auto& last = segments_.back();
    if (last.data == nullptr && last.offset + last.size == offset) {
      last.size += bytes.size();
      return;
    }
  }
  segments_.push_back({nullptr, offset, bytes.size()});
}

std::span<const ForwardPlan::Piece> ForwardPlan::pieces() {
  if (!resolved_) {
    // Copies are resolved only now: storage_ may have moved while the plan grew.
    pieces_.clear();
    for (const auto& segment : segments_) {
      pieces_.push_back(segment.data ? Piece(segment.data, segment.size)
                                     : Piece(storage_.data() + segment.offset, segment.size));
    }
    resolved_ = true;
  }
  return {pieces_.data(), pieces_.size()};
}

}  // namespace pgvigil::proxy::relay
