#include "proxy/wire/frame_decoder.hpp"

#include "proxy/wire/byte_io.hpp"

namespace pgvigil::proxy::wire {
namespace {

constexpr std::size_t kStartupHeaderSize = 8;  // length + code
constexpr std::size_t kTypedHeaderSize = 5;    // type + length
constexpr std::size_t kEncryptionRequestSize = 8;
constexpr std::size_t kCancelRequestSize = 16;  // length + code + pid + secret

bool has_empty_body(char type) { return type == 'S' || type == 'H' || type == 'X' || type == 'c'; }

bool is_small_type(char type) {
  switch (type) {
    case 'C':
    case 'D':
    case 'E':
    case 'H':
    case 'S':
    case 'X':
    case 'c':
    case 'f':
      return true;
    default:
      return false;
  }
}

}  // namespace

bool is_frontend_message_type(char type) {
  switch (type) {
    case 'Q':
    case 'P':
    case 'B':
    case 'E':
    case 'D':
    case 'C':
    case 'H':
    case 'S':
    case 'F':
    case 'X':
    case 'd':
    case 'c':
    case 'f':
    case 'p':
      return true;
    default:
      return false;
  }
}

std::string ProtocolViolation::message() const {
  const std::string number = std::to_string(value);
  switch (kind) {
    case ViolationKind::length_too_small:
      return "invalid message length " + number;
    case ViolationKind::message_too_large:
      return "message length " + number + " exceeds the limit";
    case ViolationKind::unknown_startup_code:
      return "unsupported startup code " + number + " (protocol " + std::to_string(value >> 16) +
             "." + std::to_string(value & 0xffff) + ")";
    case ViolationKind::bad_request_length:
      return "invalid length " + number + " for a startup request";
    case ViolationKind::unknown_message_type: {
      std::string text = "invalid frontend message type " + number;
      if (value >= 0x20 && value < 0x7f)
        text += " ('" + std::string(1, static_cast<char>(value)) + "')";
      return text;
    }
    case ViolationKind::bad_fixed_length:
      return "invalid length " + number + " for a message without a body";
  }
  return "protocol violation";
}

DecodeResult FrameDecoder::decode(std::span<const char> buffered) const {
  return phase_ == Phase::startup ? decode_startup(buffered) : decode_typed(buffered);
}

DecodeResult FrameDecoder::decode_startup(std::span<const char> buffered) const {
  // The length can be judged from its 4 bytes alone: refuse early rather than wait for 8.
  if (buffered.size() < kLengthSize) return NeedMore{kLengthSize - buffered.size()};
  const std::uint32_t length = read_uint32(buffered);
  if (length < kStartupHeaderSize)
    return ProtocolViolation{ViolationKind::length_too_small, length};
  if (length > limits_.max_startup_size) {
    return ProtocolViolation{ViolationKind::message_too_large, length};
  }
  if (buffered.size() < kStartupHeaderSize) return NeedMore{kStartupHeaderSize - buffered.size()};

  // The code decides the exact length a request must have; check it before waiting for a body.
  const std::uint32_t code = read_uint32(buffered.subspan(kLengthSize));
  if (code == kSslRequestCode || code == kGssEncRequestCode) {
    if (length != kEncryptionRequestSize)
      return ProtocolViolation{ViolationKind::bad_request_length, length};
  } else if (code == kCancelRequestCode) {
    if (length != kCancelRequestSize)
      return ProtocolViolation{ViolationKind::bad_request_length, length};
  } else if ((code >> 16) != kProtocolMajor3) {
    return ProtocolViolation{ViolationKind::unknown_startup_code, code};
  }

  if (buffered.size() < length) return NeedMore{length - buffered.size()};
  return Frame{0, code, buffered.subspan(kStartupHeaderSize, length - kStartupHeaderSize), length};
}

DecodeResult FrameDecoder::decode_typed(std::span<const char> buffered) const {
  if (buffered.empty()) return NeedMore{kTypedHeaderSize};
  const char type = buffered[0];
  const bool from_client = phase_ == Phase::normal;
  // Judge the type byte as soon as it arrives: garbage is refused after one byte.
  if (from_client && !is_frontend_message_type(type)) {
    return ProtocolViolation{ViolationKind::unknown_message_type,
                             static_cast<std::uint32_t>(static_cast<unsigned char>(type))};
  }
  if (buffered.size() < kTypedHeaderSize) return NeedMore{kTypedHeaderSize - buffered.size()};

  const std::uint32_t length = read_uint32(buffered.subspan(1));
  if (length < kLengthSize) return ProtocolViolation{ViolationKind::length_too_small, length};
  std::size_t limit = limits_.max_message_size;
  if (from_client) {
    if (has_empty_body(type) && length != kLengthSize) {
      return ProtocolViolation{ViolationKind::bad_fixed_length, length};
    }
    if (is_small_type(type)) limit = limits_.max_small_message_size;
    if (type == 'p') limit = limits_.max_auth_message_size;
  }
  if (length > limit) return ProtocolViolation{ViolationKind::message_too_large, length};

  // length fits in 32 bits, so wire_size cannot overflow size_t.
  const std::size_t wire_size = std::size_t{1} + length;
  if (buffered.size() < wire_size) return NeedMore{wire_size - buffered.size()};
  return Frame{type, 0, buffered.subspan(kTypedHeaderSize, length - kLengthSize), wire_size};
}

}  // namespace pgvigil::proxy::wire
