#pragma once
// Finds message boundaries in a relayed byte stream without buffering it: the scanner looks only
// at each message's type, length and first body byte (the ReadyForQuery status, whether a Parse
// names its statement) and skips the rest. Pure: no I/O, fuzzable.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>

#include "proxy/wire/byte_io.hpp"

namespace pgvigil::proxy::relay {

struct MessageHeader {
  char type;
  std::uint32_t body_length;  // the length word minus its own 4 bytes
  int first_body_byte;        // -1 when the body is empty
  // Offsets in the scanned span: where the message began (0 when it began in an earlier span,
  // see begun_earlier) and one past its last byte (beyond the span's size when it goes on in
  // later spans).
  std::size_t start;
  std::size_t end;
  bool begun_earlier;  // its first bytes came in an earlier span
};

class MessageScanner {
 public:
  // max_body_length: a longer message is a protocol violation (the peer is broken or hostile).
  explicit MessageScanner(std::uint32_t max_body_length) : max_body_length_(max_body_length) {}

  enum class Verdict { ok, bad_length };

  // Scans `bytes`, calling visit(const MessageHeader&) once per message as soon as its header
  // and first body byte are known. visit returns false to stop early (the rest is not scanned).
  template <typename Visitor>
  Verdict scan(std::span<const char> bytes, Visitor&& visit);

  // True between messages: nothing of a message is half-read.
  bool at_boundary() const { return header_size_ == 0 && body_remaining_ == 0; }
  // A message whose header (or first body byte) is not complete yet: it was not visited.
  bool in_header() const { return header_size_ > 0; }
  // Where that message began in the last span scanned (valid when in_header() and it began in
  // that span, which header_begun_earlier() tells).
  std::size_t header_start() const { return start_; }
  bool header_begun_earlier() const { return begun_earlier_; }

 private:
  static constexpr std::size_t kHeaderSize = 5;  // type + length word
  std::uint32_t max_body_length_;
  char header_[kHeaderSize + 1] = {};
  std::uint8_t header_size_ = 0;
  bool begun_earlier_ = false;
  std::uint32_t start_ = 0;
  std::uint32_t body_remaining_ = 0;  // a body is at most 2^32 - 5 bytes (its length word)
};

template <typename Visitor>
MessageScanner::Verdict MessageScanner::scan(std::span<const char> bytes, Visitor&& visit) {
  std::size_t position = 0;
  if (header_size_ > 0) {  // a header split across spans began before this one
    start_ = 0;
    begun_earlier_ = true;
  }
  while (position < bytes.size()) {
    if (body_remaining_ > 0) {
      const auto skip = std::min<std::size_t>(body_remaining_, bytes.size() - position);
      position += skip;
      body_remaining_ -= static_cast<std::uint32_t>(skip);
      continue;
    }
    if (header_size_ == 0) {
      start_ = static_cast<std::uint32_t>(position);
      begun_earlier_ = false;
      // The common case: the header and first body byte lie in this span, and are read where
      // they are. Byte by byte through header_ costs about three times as many instructions,
      // and the relay scans every message of a request up to three times (callgrind).
      if (bytes.size() - position > kHeaderSize) {
        const auto* raw = reinterpret_cast<const unsigned char*>(bytes.data() + position);
        const std::uint32_t length = wire::read_uint32(bytes.subspan(position + 1));
        // A bad length is left to the byte-by-byte path, which refuses it as it always has.
        if (length >= 4 && length - 4 <= max_body_length_) {
          const std::uint32_t body = length - 4;
          position += body > 0 ? kHeaderSize + 1 : kHeaderSize;
          body_remaining_ = body > 0 ? body - 1 : 0;
          const MessageHeader header{static_cast<char>(raw[0]),        body,
                                     body > 0 ? raw[kHeaderSize] : -1, start_,
                                     position + body_remaining_,       false};
          if (!visit(header)) return Verdict::ok;
          continue;
        }
      }
    }
    header_[header_size_++] = bytes[position++];
    if (header_size_ < kHeaderSize) continue;
    const std::uint32_t length = wire::read_uint32(std::span<const char>(header_ + 1, 4));
    if (length < 4 || length - 4 > max_body_length_) return Verdict::bad_length;
    const std::uint32_t body = length - 4;
    if (body > 0 && header_size_ == kHeaderSize) continue;  // wait for the first body byte
    body_remaining_ = body > 0 ? body - 1 : 0;
    const MessageHeader header{header_[0],
                               body,
                               body > 0 ? static_cast<unsigned char>(header_[kHeaderSize]) : -1,
                               start_,
                               position + body_remaining_,
                               begun_earlier_};
    header_size_ = 0;
    if (!visit(header)) return Verdict::ok;
  }
  return Verdict::ok;
}

}  // namespace pgvigil::proxy::relay
