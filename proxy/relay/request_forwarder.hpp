#pragma once
// Turns what a client sends into what the relay sends its server, message by message, without
// buffering the stream. The messages the relay must understand (Parse, Bind, Describe, Close,
// Query, Terminate) reach the visitor whole and contiguous: a view into the read when they lie
// in it, or assembled across reads, their first part held back until the rest arrives, so a
// message can still be refused (or, later, rewritten) before any of it reaches the server. Every
// other message passes as ranges of the read; a large one (COPY data, a Bind of a big value)
// streams through, only its header seen. A header cut by the end of a read is held back too,
// so nothing of a message goes out before its type and length are known.
//
// Pure: no I/O. The output is a ForwardPlan: pieces of the read and of held bytes, in order.

#include <boost/container/small_vector.hpp>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "proxy/relay/message_scanner.hpp"

namespace pgvigil::proxy::relay {

// What to send, in order. Its pieces point into the read and into the forwarder's held bytes:
// valid until the forwarder's next take().
class ForwardPlan {
 public:
  using Piece = std::span<const char>;

  void clear() {
    pieces_.clear();
    bytes_ = 0;
  }
  // Appends a piece; joins it to the last one when they are adjacent in memory.
  void add(Piece piece);
  std::span<const Piece> pieces() const { return {pieces_.data(), pieces_.size()}; }
  std::size_t bytes() const { return bytes_; }
  bool empty() const { return bytes_ == 0; }

 private:
  boost::container::small_vector<Piece, 4> pieces_;
  std::size_t bytes_ = 0;
};

class RequestForwarder {
 public:
  // Messages of these types larger than this stream through instead of being seen whole (the
  // visitor still sees their header). A relay read holds at most this much.
  static constexpr std::size_t kWholeLimit = 32 * 1024;
  // Whether the visitor sees messages of this type whole.
  static constexpr bool seen_whole(char type) {
    return type == 'P' || type == 'B' || type == 'D' || type == 'C' || type == 'Q' || type == 'X';
  }

  explicit RequestForwarder(std::uint32_t max_body_length) : scanner_(max_body_length) {}

  enum class Verdict {
    ok,          // the plan holds everything that may go on now
    stopped,     // the visitor refused a message: the plan holds what came before it
    bad_length,  // a length word below 4 or above the limit: a protocol violation
  };

  // Takes the bytes of one client read. visit(const MessageHeader& header, std::span<const char>
  // whole) -> bool is called once per message, in order: for a type seen whole once the message
  // is complete, with `whole` holding all of it (type byte to last body byte); for the others
  // (and larger ones) once the header and first body byte are known, with `whole` empty. false
  // refuses the message: nothing of it, nor after it, is planned.
  template <typename Visitor>
  Verdict take(std::span<const char> input, ForwardPlan& plan, Visitor&& visit);

  // Between messages: nothing of a message half-read, nothing held back.
  bool at_boundary() const { return scanner_.at_boundary() && !held_; }
  // The server has seen nothing of an unfinished message (it is held back, or there is none):
  // held bytes are never partly planned.
  bool server_at_boundary() const { return scanner_.at_boundary() || held_ != nullptr; }
  // The boundary scanner, for the turn rule of the next read (turn_rules.hpp).
  const MessageScanner& scanner() const { return scanner_; }

 private:
  // Bytes of one message, from its first byte, kept back from the server.
  struct Held {
    std::string bytes;
    MessageHeader header{};       // valid once header_known
    std::uint64_t remaining = 0;  // bytes of the message still to come, once header_known
    bool header_known = false;
  };

  Held& hold();
  // Called by take() for a header the scanner completed; returns false to stop the scan.
  template <typename Visitor>
  bool on_header(const MessageHeader& header, std::span<const char> input, std::size_t& cursor,
                 ForwardPlan& plan, Verdict& verdict, Visitor& visit);

  MessageScanner scanner_;
  std::unique_ptr<Held> held_;      // a message (or header) held back; only while one is
  std::unique_ptr<Held> released_;  // held bytes the last plan points into
};

template <typename Visitor>
RequestForwarder::Verdict RequestForwarder::take(std::span<const char> input, ForwardPlan& plan,
                                                 Visitor&& visit) {
  plan.clear();
  released_.reset();  // the previous plan has been sent
  Verdict verdict = Verdict::ok;
  std::size_t cursor = 0;  // input before it is planned or held

  // A message seen whole, held from earlier reads with its header known: its body goes on here.
  if (held_ && held_->header_known) {
    const auto taken =
        static_cast<std::size_t>(std::min<std::uint64_t>(held_->remaining, input.size()));
    held_->bytes.append(input.data(), taken);
    held_->remaining -= taken;
    cursor = taken;
    if (held_->remaining == 0) {
      if (!visit(held_->header, std::span<const char>(held_->bytes))) return Verdict::stopped;
      released_ = std::move(held_);
      plan.add(released_->bytes);
    }
  }

  const auto scanned = scanner_.scan(input, [&](const MessageHeader& header) {
    return on_header(header, input, cursor, plan, verdict, visit);
  });
  if (scanned == MessageScanner::Verdict::bad_length) return Verdict::bad_length;
  if (verdict != Verdict::ok) return verdict;

  if (held_ && !held_->header_known) {
    // A header that began in an earlier read is still not complete: all of this read is its.
    held_->bytes.append(input.data() + cursor, input.size() - cursor);
    return verdict;
  }
  if (scanner_.in_header() && !scanner_.header_begun_earlier()) {
    // A header cut by the end of this read: keep it back until its type and length are known.
    const auto start = scanner_.header_start();
    plan.add(input.subspan(cursor, start - cursor));
    hold().bytes.assign(input.data() + start, input.size() - start);
    return verdict;
  }
  if (held_ && held_->header_known) return verdict;  // the rest of the read is held
  plan.add(input.subspan(cursor));
  return verdict;
}

template <typename Visitor>
bool RequestForwarder::on_header(const MessageHeader& header, std::span<const char> input,
                                 std::size_t& cursor, ForwardPlan& plan, Verdict& verdict,
                                 Visitor& visit) {
  const std::uint64_t total = std::uint64_t{header.body_length} + 5;
  const bool whole = seen_whole(header.type) && total <= kWholeLimit;
  const bool complete = header.end <= input.size();
  if (header.begun_earlier) {
    // Its first bytes are held (a header cut by the end of the last read).
    Held& held = *held_;
    const auto here = complete ? header.end : input.size();
    held.bytes.append(input.data(), here);
    cursor = here;
    if (whole && !complete) {
      held.header = header;
      held.header_known = true;
      held.remaining = total - held.bytes.size();
      return true;
    }
    if (!visit(header, whole ? std::span<const char>(held.bytes) : std::span<const char>())) {
      verdict = Verdict::stopped;
      return false;
    }
    // Planned: from here on it streams (when not complete) as part of the read's range.
    released_ = std::move(held_);
    plan.add(released_->bytes);
    return true;
  }
  if (whole && complete) {
    if (visit(header, input.subspan(header.start, header.end - header.start))) return true;
  } else if (whole) {
    // Whole-type and cut by the end of the read: hold it from its start.
    plan.add(input.subspan(cursor, header.start - cursor));
    Held& held = hold();
    held.bytes.assign(input.data() + header.start, input.size() - header.start);
    held.header = header;
    held.header_known = true;
    held.remaining = total - held.bytes.size();
    cursor = input.size();
    return true;
  } else if (visit(header, std::span<const char>())) {
    return true;  // streams on as part of the read's range
  }
  plan.add(input.subspan(cursor, header.start - cursor));
  cursor = header.start;
  verdict = Verdict::stopped;
  return false;
}

}  // namespace pgvigil::proxy::relay
