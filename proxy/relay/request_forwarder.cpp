#include "proxy/relay/request_forwarder.hpp"

namespace pgvigil::proxy::relay {

void ForwardPlan::add(Piece piece) {
  if (piece.empty()) return;
  bytes_ += piece.size();
  if (!pieces_.empty()) {
    auto& last = pieces_.back();
    if (last.data() + last.size() == piece.data()) {
      last = Piece(last.data(), last.size() + piece.size());
      return;
    }
  }
  pieces_.push_back(piece);
}

RequestForwarder::Held& RequestForwarder::hold() {
  held_ = std::make_unique<Held>();
  return *held_;
}

}  // namespace pgvigil::proxy::relay
