#pragma once
// Turns what one peer sends into what the relay sends the other, message by message, without
// buffering the stream. The messages the relay must understand reach its visitor whole and
// contiguous: a view into the read when they lie in it, or assembled across reads, their first
// part held back until the rest arrives, so that a message can still be refused, rewritten,
// dropped or preceded by others (Edit) before any of it goes on. Every other message passes as
// ranges of the read; a large one (COPY data, a row, a Bind of a big value) streams through,
// only its header seen. A header cut by the end of a read is held back too, so nothing of a
// message goes on before its type and length are known.
//
// One per direction: RequestForwarder shows the relay the client's Parse, Bind, Describe,
// Close, Query and Terminate whole; ResponseForwarder the server's completions, descriptions,
// errors, parameter changes and ReadyForQuery. Pure: no I/O. The output is a ForwardPlan.

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "proxy/relay/forward_plan.hpp"
#include "proxy/relay/message_scanner.hpp"

namespace pgvigil::proxy::relay {

// Messages larger than this stream through instead of being seen whole (the visitor still sees
// their header), unless the forwarder is told to show some types whole at any size.
inline constexpr std::size_t kWholeLimit = 32 * 1024;

struct FrontendMessages {
  static constexpr bool seen_whole(char type) {
    return type == 'P' || type == 'B' || type == 'D' || type == 'C' || type == 'Q' || type == 'X';
  }
  // Parse and Bind name a statement the relay may have to rename, whatever their size.
  static constexpr bool whole_at_any_size(char type) { return type == 'P' || type == 'B'; }
};

struct BackendMessages {
  // Every answer that can end a request, and the messages a relay may read or rewrite.
  static constexpr bool seen_whole(char type) {
    switch (type) {
      case '1':
      case '2':
      case '3':
      case 'C':
      case 'I':
      case 's':
      case 'n':
      case 'T':
      case 't':
      case 'Z':
      case 'E':
      case 'S':
        return true;
      default:
        return false;
    }
  }
  static constexpr bool whole_at_any_size(char) { return false; }
};

// The body of a message a forwarder showed whole (after its type and length); empty when it
// was not shown whole.
inline std::span<const char> body_of(std::span<const char> whole) {
  constexpr std::size_t kHeaderBytes = 5;  // type and length
  return whole.size() < kHeaderBytes ? std::span<const char>() : whole.subspan(kHeaderBytes);
}

template <typename Messages>
class MessageForwarder {
 public:
  static constexpr bool seen_whole(char type) { return Messages::seen_whole(type); }

  explicit MessageForwarder(std::uint32_t max_body_length) : scanner_(max_body_length) {}

  // From now on the types Messages::whole_at_any_size names are shown whole above kWholeLimit
  // too (up to the scanner's limit): held back until complete, at the cost of their size.
  void show_whole_at_any_size() { whole_at_any_size_ = true; }

  enum class Verdict {
    ok,          // the plan holds everything that may go on now
    stopped,     // the visitor refused a message: the plan holds what came before it
    bad_length,  // a length word below 4 or above the limit: a protocol violation
  };

  // Takes the bytes of one read. visit(const MessageHeader& header, std::span<const char> whole,
  // Edit& edit) -> bool is called once per message, in order: for a type seen whole once the
  // message is complete, with `whole` holding all of it (type byte to last body byte); for the
  // others (and larger ones) once the header and first body byte are known, with `whole`
  // empty. (For a message held across reads, the header's offsets are those of the read where
  // the header was seen.) false refuses the message: nothing of it, nor after it, is planned.
  template <typename Visitor>
  Verdict take(std::span<const char> input, ForwardPlan& plan, Visitor&& visit);

  // Between messages: nothing of a message half-read, nothing held back.
  bool at_boundary() const { return scanner_.at_boundary() && !held_; }
  // Everything planned ends at a message boundary: the peer on the other side has seen nothing
  // of an unfinished message (it is held back, or there is none).
  bool planned_to_boundary() const { return scanner_.at_boundary() || held_ != nullptr; }
  // The boundary scanner, for the turn rule of the next read (turn_rules.hpp).
  const MessageScanner& scanner() const { return scanner_; }

 private:
  // Bytes of one message, from its first byte, kept back.
  struct Held {
    std::string bytes;
    MessageHeader header{};       // valid once header_known
    std::uint64_t remaining = 0;  // bytes of the message still to come, once header_known
    bool header_known = false;
  };

  Held& hold() {
    held_ = std::make_unique<Held>();
    return *held_;
  }
  // Shows a held message to the visitor and plans it (unless dropped); false if refused.
  template <typename Visitor>
  bool release_held(std::span<const char> whole, ForwardPlan& plan, Visitor& visit);
  // Called by take() for a header the scanner completed; returns false to stop the scan.
  template <typename Visitor>
  bool on_header(const MessageHeader& header, std::span<const char> input, std::size_t& cursor,
                 ForwardPlan& plan, Verdict& verdict, Visitor& visit);

  MessageScanner scanner_;
  bool whole_at_any_size_ = false;  // here, not last: it fills the gap before the pointers
  std::unique_ptr<Held> held_;      // a message (or header) held back; only while one is
  std::unique_ptr<Held> released_;  // held bytes the last plan points into
};

using RequestForwarder = MessageForwarder<FrontendMessages>;
using ResponseForwarder = MessageForwarder<BackendMessages>;

template <typename Messages>
template <typename Visitor>
bool MessageForwarder<Messages>::release_held(std::span<const char> whole, ForwardPlan& plan,
                                              Visitor& visit) {
  Edit edit(plan, {});
  if (!visit(held_->header, whole, edit)) return false;
  // Planned (unless dropped): from here on a streamed one goes on as part of the read's range.
  released_ = std::move(held_);
  if (!edit.dropped()) plan.add(released_->bytes);
  return true;
}

template <typename Messages>
template <typename Visitor>
typename MessageForwarder<Messages>::Verdict MessageForwarder<Messages>::take(
    std::span<const char> input, ForwardPlan& plan, Visitor&& visit) {
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
    if (held_->remaining == 0 && !release_held(std::span<const char>(held_->bytes), plan, visit)) {
      return Verdict::stopped;
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

template <typename Messages>
template <typename Visitor>
bool MessageForwarder<Messages>::on_header(const MessageHeader& header, std::span<const char> input,
                                           std::size_t& cursor, ForwardPlan& plan, Verdict& verdict,
                                           Visitor& visit) {
  const std::uint64_t total = std::uint64_t{header.body_length} + 5;
  const bool whole =
      seen_whole(header.type) &&
      (total <= kWholeLimit || (whole_at_any_size_ && Messages::whole_at_any_size(header.type)));
  const bool complete = header.end <= input.size();
  if (header.begun_earlier) {
    // Its first bytes are held (a header cut by the end of the last read).
    Held& held = *held_;
    const auto here = complete ? header.end : input.size();
    held.bytes.append(input.data(), here);
    cursor = here;
    held.header = header;
    if (whole && !complete) {
      held.header_known = true;
      held.remaining = total - held.bytes.size();
      return true;
    }
    if (!release_held(whole ? std::span<const char>(held.bytes) : std::span<const char>(), plan,
                      visit)) {
      verdict = Verdict::stopped;
      return false;
    }
    return true;
  }
  if (whole && !complete) {
    // Cut by the end of the read: hold it from its start.
    plan.add(input.subspan(cursor, header.start - cursor));
    Held& held = hold();
    held.bytes.assign(input.data() + header.start, input.size() - header.start);
    held.header = header;
    held.header_known = true;
    held.remaining = total - held.bytes.size();
    cursor = input.size();
    return true;
  }
  Edit edit(plan, input.subspan(cursor, header.start - cursor));
  const auto shown =
      whole ? input.subspan(header.start, header.end - header.start) : std::span<const char>();
  if (!visit(header, shown, edit)) {
    if (!edit.flushed()) plan.add(input.subspan(cursor, header.start - cursor));
    cursor = header.start;
    verdict = Verdict::stopped;
    return false;
  }
  // What came before an edited message is planned; the message itself goes on with the read's
  // range unless it was dropped (which only a message shown whole can be).
  if (edit.flushed()) cursor = header.start;
  if (edit.dropped() && whole) cursor = header.end;
  return true;
}

}  // namespace pgvigil::proxy::relay
