#pragma once
// What the relay sends on after one read, in order: pieces of the read (and of bytes held back
// from earlier reads), and bytes the plan keeps itself (a message pgvigil rewrote, added or
// made). Edit is what a forwarder's visitor may do to the message it is shown.

#include <boost/container/small_vector.hpp>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace pgvigil::proxy::relay {

class ForwardPlan {
 public:
  using Piece = std::span<const char>;

  void clear();
  // Bytes that stay valid until the plan is sent; joined to the last piece when adjacent.
  void add(Piece piece);
  // Bytes the plan copies and keeps.
  void add_copy(std::string_view bytes);
  // Valid until the next add, add_copy or clear.
  std::span<const Piece> pieces();
  std::size_t bytes() const { return bytes_; }
  bool empty() const { return bytes_ == 0; }

 private:
  // A piece of the caller's bytes, or (data null) of storage_ from `offset`.
  struct Segment {
    const char* data;
    std::size_t offset;
    std::size_t size;
  };
  boost::container::small_vector<Segment, 4> segments_;
  boost::container::small_vector<Piece, 4> pieces_;  // segments_ resolved, while current
  bool resolved_ = true;
  std::string storage_;
  std::size_t bytes_ = 0;
};

// What a visitor may do to the message a forwarder shows it, besides letting it pass.
class Edit {
 public:
  Edit(ForwardPlan& plan, ForwardPlan::Piece before) : plan_(plan), before_(before) {}

  // Bytes that go on before the message (a message pgvigil adds, or an answer it made).
  void insert(std::string_view bytes) {
    flush();
    plan_.add_copy(bytes);
  }
  // The message does not go on (pgvigil answers it, or swallows it). Only for a message shown
  // whole: a streamed one has gone on in part already.
  void drop() {
    flush();
    dropped_ = true;
  }
  void replace(std::string_view bytes) {
    drop();
    plan_.add_copy(bytes);
  }
  bool flushed() const { return flushed_; }
  bool dropped() const { return dropped_; }

 private:
  // What of the read comes before the message is planned before anything is inserted.
  void flush() {
    if (flushed_) return;
    plan_.add(before_);
    flushed_ = true;
  }

  ForwardPlan& plan_;
  ForwardPlan::Piece before_;
  bool flushed_ = false;
  bool dropped_ = false;
};

}  // namespace pgvigil::proxy::relay
