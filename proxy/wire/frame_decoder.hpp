#pragma once
// Splits a byte stream into protocol frames without copying or allocating. The caller owns the
// buffer: it appends what it read, asks decode() about the front of it, and drops
// Frame::wire_size bytes after each frame. Nothing is remembered between calls except the phase,
// so bytes may arrive in any chunking.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <variant>

#include "proxy/wire/protocol.hpp"

namespace pgvigil::proxy::wire {

enum class Phase {
  startup,  // client, before StartupMessage: int32 length + int32 code, no type byte
  normal,   // client, after StartupMessage: type byte + int32 length, frontend types only
  backend,  // server to proxy: type byte + int32 length, any type byte
};

// Upper bounds on the whole frame (length word included, type byte excluded), per class of
// message. Defaults are PostgreSQL's: oversized input is refused before it is buffered.
struct DecoderLimits {
  std::size_t max_startup_size = kMaxStartupPacketSize;
  std::size_t max_message_size = kMaxLargeMessageSize;  // Q P B F d, and every backend message
  std::size_t max_small_message_size = kMaxSmallMessageSize;  // C D E H S X c f
  std::size_t max_auth_message_size = kMaxAuthMessageSize;    // p
};

// Not enough bytes yet: read at least `bytes` more, then call decode() again.
struct NeedMore {
  std::size_t bytes = 0;
};

// A complete frame at the front of the buffer. Views point into the caller's buffer and die
// with it.
struct Frame {
  char type = 0;                   // message type byte; 0 in the startup phase
  std::uint32_t startup_code = 0;  // startup phase only: protocol version or request code
  std::span<const char> payload;   // after the length word (and after the code, in startup)
  std::size_t wire_size = 0;       // bytes this frame occupies; drop them before the next call
};

enum class ViolationKind {
  length_too_small,      // length word < 4 (or < 8 for a startup packet)
  message_too_large,     // length above the limit for its type
  unknown_startup_code,  // not 3.x, SSLRequest, GSSENCRequest or CancelRequest
  bad_request_length,    // SSLRequest/GSSENCRequest not 8 bytes, CancelRequest not 16
  unknown_message_type,  // type byte no frontend sends
  bad_fixed_length,      // S H X c carry no body, so their length must be 4
};

// The stream cannot be resynchronised after this; the session closes the connection.
struct ProtocolViolation {
  ViolationKind kind{};
  std::uint32_t value = 0;  // the refused length, code or type byte, for the log

  // "invalid frontend message type 122 ('z')"-style text, for logs and ErrorResponse 08P01.
  std::string message() const;
};

using DecodeResult = std::variant<NeedMore, Frame, ProtocolViolation>;

class FrameDecoder {
 public:
  explicit FrameDecoder(Phase phase = Phase::startup, DecoderLimits limits = {})
      : phase_(phase), limits_(limits) {}

  // Looks only at the front of `buffered`; never reads past a frame's end.
  DecodeResult decode(std::span<const char> buffered) const;

  // The session moves to Phase::normal once it has accepted a StartupMessage. Not automatic:
  // SSLRequest, GSSENCRequest and a refused protocol version keep the startup phase.
  void set_phase(Phase phase) { phase_ = phase; }
  Phase phase() const { return phase_; }
  const DecoderLimits& limits() const { return limits_; }

 private:
  DecodeResult decode_startup(std::span<const char> buffered) const;
  DecodeResult decode_typed(std::span<const char> buffered) const;

  Phase phase_;
  DecoderLimits limits_;
};

// True for the type bytes a client may send after startup: Q P B E D C H S F X d c f p.
bool is_frontend_message_type(char type);

}  // namespace pgvigil::proxy::wire
