// FrameDecoder verdicts on malformed and valid input, and independence from chunking.

#include "proxy/wire/frame_decoder.hpp"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "tests/proxy/wire_bytes.hpp"

namespace pgvigil::proxy::wire {
namespace {

using test::as_span;
using test::be32;
using test::to_string;

struct VerdictCase {
  const char* name;
  Phase phase;
  std::string bytes;
  // Exactly one of these describes the expected verdict.
  enum { need_more, frame, violation } verdict;
  std::size_t need_or_size = 0;  // NeedMore::bytes, or Frame::wire_size
  ViolationKind kind{};
};

std::vector<VerdictCase> verdict_cases() {
  const std::string startup_v3 =
      be32(8 + 8) + be32(kProtocolVersion30) + std::string("user\0u\0\0", 8);
  return {
      // Startup phase: lengths.
      {"empty", Phase::startup, "", VerdictCase::need_more, 4},
      {"two length bytes", Phase::startup, std::string("\0\0", 2), VerdictCase::need_more, 2},
      {"length zero", Phase::startup, be32(0), VerdictCase::violation, 0,
       ViolationKind::length_too_small},
      {"length three", Phase::startup, be32(3), VerdictCase::violation, 0,
       ViolationKind::length_too_small},
      {"length seven", Phase::startup, be32(7), VerdictCase::violation, 0,
       ViolationKind::length_too_small},
      {"length over 10000", Phase::startup, be32(10001), VerdictCase::violation, 0,
       ViolationKind::message_too_large},
      {"length all ones", Phase::startup, be32(0xffffffff), VerdictCase::violation, 0,
       ViolationKind::message_too_large},
      {"length only", Phase::startup, be32(8), VerdictCase::need_more, 4},
      // Startup phase: codes.
      {"protocol 2.0", Phase::startup, be32(8) + be32(2 << 16), VerdictCase::violation, 0,
       ViolationKind::unknown_startup_code},
      {"protocol 4.0", Phase::startup, be32(8) + be32(4 << 16), VerdictCase::violation, 0,
       ViolationKind::unknown_startup_code},
      {"code 1234", Phase::startup, be32(8) + be32(1234), VerdictCase::violation, 0,
       ViolationKind::unknown_startup_code},
      {"SSLRequest too long", Phase::startup, be32(12) + be32(kSslRequestCode),
       VerdictCase::violation, 0, ViolationKind::bad_request_length},
      {"GSSENCRequest too long", Phase::startup, be32(16) + be32(kGssEncRequestCode),
       VerdictCase::violation, 0, ViolationKind::bad_request_length},
      {"CancelRequest too short", Phase::startup, be32(12) + be32(kCancelRequestCode),
       VerdictCase::violation, 0, ViolationKind::bad_request_length},
      {"CancelRequest truncated", Phase::startup, be32(16) + be32(kCancelRequestCode) + be32(7),
       VerdictCase::need_more, 4},
      {"StartupMessage truncated", Phase::startup, startup_v3.substr(0, 12), VerdictCase::need_more,
       4},
      // Garbage that real clients send to the wrong port.
      {"HTTP request", Phase::startup, "GET / HTTP/1.1\r\n", VerdictCase::violation, 0,
       ViolationKind::message_too_large},
      {"raw TLS ClientHello", Phase::startup, std::string("\x16\x03\x01\x02\x00\x01", 6),
       VerdictCase::violation, 0, ViolationKind::message_too_large},
      // Startup phase: valid.
      {"SSLRequest", Phase::startup, be32(8) + be32(kSslRequestCode), VerdictCase::frame, 8},
      {"GSSENCRequest", Phase::startup, be32(8) + be32(kGssEncRequestCode), VerdictCase::frame, 8},
      {"CancelRequest", Phase::startup, be32(16) + be32(kCancelRequestCode) + be32(7) + be32(9),
       VerdictCase::frame, 16},
      {"StartupMessage 3.0", Phase::startup, startup_v3, VerdictCase::frame, 16},
      {"StartupMessage 3.2", Phase::startup, be32(8) + be32((3 << 16) | 2), VerdictCase::frame, 8},
      {"frame followed by more", Phase::startup, be32(8) + be32(kSslRequestCode) + "Q",
       VerdictCase::frame, 8},
      // Normal phase: types.
      {"type z", Phase::normal, "z", VerdictCase::violation, 0,
       ViolationKind::unknown_message_type},
      {"type NUL", Phase::normal, std::string(1, '\0'), VerdictCase::violation, 0,
       ViolationKind::unknown_message_type},
      {"backend type R", Phase::normal, "R", VerdictCase::violation, 0,
       ViolationKind::unknown_message_type},
      {"startup packet after startup", Phase::normal, be32(8) + be32(kProtocolVersion30),
       VerdictCase::violation, 0, ViolationKind::unknown_message_type},
      {"type byte 0xff", Phase::normal, "\xff", VerdictCase::violation, 0,
       ViolationKind::unknown_message_type},
      // Normal phase: lengths.
      {"Q header partial", Phase::normal, std::string("Q\0\0", 3), VerdictCase::need_more, 2},
      {"Q length 3", Phase::normal, "Q" + be32(3), VerdictCase::violation, 0,
       ViolationKind::length_too_small},
      {"Q length 0", Phase::normal, "Q" + be32(0), VerdictCase::violation, 0,
       ViolationKind::length_too_small},
      {"Q over 1 GiB", Phase::normal, "Q" + be32(0x40000000), VerdictCase::violation, 0,
       ViolationKind::message_too_large},
      {"Q at 1 GiB - 1 waits", Phase::normal, "Q" + be32(0x3fffffff), VerdictCase::need_more,
       0x3fffffff - 4},
      {"Q truncated body", Phase::normal, "Q" + be32(10) + "SEL", VerdictCase::need_more, 3},
      {"Sync with a body", Phase::normal, "S" + be32(5) + "x", VerdictCase::violation, 0,
       ViolationKind::bad_fixed_length},
      {"Terminate with a body", Phase::normal, "X" + be32(8), VerdictCase::violation, 0,
       ViolationKind::bad_fixed_length},
      {"Flush with length 3", Phase::normal, "H" + be32(3), VerdictCase::violation, 0,
       ViolationKind::length_too_small},
      {"CopyDone with a body", Phase::normal, "c" + be32(6) + "xy", VerdictCase::violation, 0,
       ViolationKind::bad_fixed_length},
      {"Describe over small limit", Phase::normal, "D" + be32(10001), VerdictCase::violation, 0,
       ViolationKind::message_too_large},
      {"password over auth limit", Phase::normal, "p" + be32(65536), VerdictCase::violation, 0,
       ViolationKind::message_too_large},
      {"CopyData large is fine", Phase::normal, "d" + be32(1 << 20), VerdictCase::need_more,
       (1 << 20) - 4},
      // Normal phase: valid.
      {"Sync", Phase::normal, "S" + be32(4), VerdictCase::frame, 5},
      {"Terminate", Phase::normal, "X" + be32(4), VerdictCase::frame, 5},
      {"empty Query", Phase::normal, "Q" + be32(5) + std::string(1, '\0'), VerdictCase::frame, 6},
      // Backend phase: any type, lengths still checked.
      {"backend R", Phase::backend, "R" + be32(8) + be32(0), VerdictCase::frame, 9},
      {"backend unknown type", Phase::backend, "z" + be32(4), VerdictCase::frame, 5},
      {"backend length 2", Phase::backend, "Z" + be32(2), VerdictCase::violation, 0,
       ViolationKind::length_too_small},
  };
}

TEST(FrameDecoder, VerdictTable) {
  for (const VerdictCase& c : verdict_cases()) {
    SCOPED_TRACE(c.name);
    const FrameDecoder decoder(c.phase);
    const DecodeResult result = decoder.decode(as_span(c.bytes));
    switch (c.verdict) {
      case VerdictCase::need_more:
        ASSERT_TRUE(std::holds_alternative<NeedMore>(result));
        EXPECT_EQ(std::get<NeedMore>(result).bytes, c.need_or_size);
        break;
      case VerdictCase::frame:
        ASSERT_TRUE(std::holds_alternative<Frame>(result));
        EXPECT_EQ(std::get<Frame>(result).wire_size, c.need_or_size);
        break;
      case VerdictCase::violation:
        ASSERT_TRUE(std::holds_alternative<ProtocolViolation>(result));
        EXPECT_EQ(std::get<ProtocolViolation>(result).kind, c.kind);
        EXPECT_FALSE(std::get<ProtocolViolation>(result).message().empty());
        break;
    }
  }
}

TEST(FrameDecoder, ReportsFieldsOfAFrame) {
  const std::string bytes = be32(16) + be32(kCancelRequestCode) + be32(1234) + be32(5678);
  const DecodeResult result = FrameDecoder().decode(as_span(bytes));
  ASSERT_TRUE(std::holds_alternative<Frame>(result));
  const Frame& frame = std::get<Frame>(result);
  EXPECT_EQ(frame.type, 0);
  EXPECT_EQ(frame.startup_code, kCancelRequestCode);
  EXPECT_EQ(to_string(frame.payload), be32(1234) + be32(5678));
  // A view, not a copy.
  EXPECT_EQ(frame.payload.data(), bytes.data() + 8);
}

TEST(FrameDecoder, ViolationMessageNamesThePrintableType) {
  const DecodeResult result = FrameDecoder(Phase::normal).decode(as_span("z"));
  ASSERT_TRUE(std::holds_alternative<ProtocolViolation>(result));
  EXPECT_EQ(std::get<ProtocolViolation>(result).message(),
            "invalid frontend message type 122 ('z')");
}

TEST(FrameDecoder, HonoursConfiguredMaximum) {
  DecoderLimits limits;
  limits.max_message_size = 100;
  const FrameDecoder decoder(Phase::normal, limits);
  const std::string at_limit = "Q" + be32(100);
  const std::string over_limit = "Q" + be32(101);
  EXPECT_TRUE(std::holds_alternative<NeedMore>(decoder.decode(as_span(at_limit))));
  EXPECT_TRUE(std::holds_alternative<ProtocolViolation>(decoder.decode(as_span(over_limit))));
}

TEST(FrameDecoder, ClassifiesFrontendTypes) {
  for (const char type : std::string("QPBEDCHSFXdcfp"))
    EXPECT_TRUE(is_frontend_message_type(type)) << type;
  for (const char type : std::string("RZKTNAazq1\0", 11))
    EXPECT_FALSE(is_frontend_message_type(type)) << type;
}

// A whole client conversation: SSLRequest, StartupMessage, then typed messages.
std::string conversation() {
  std::string bytes = be32(8) + be32(kSslRequestCode);
  bytes +=
      be32(8 + 24) + be32(kProtocolVersion30) + std::string("user\0alice\0database\0db\0\0", 24);
  bytes += "Q" + be32(4 + 9) + std::string("SELECT 1\0", 9);
  bytes += "P" + be32(4 + 3) + std::string("\0x\0", 3);
  bytes += "S" + be32(4);
  bytes += "X" + be32(4);
  return bytes;
}

struct SeenFrame {
  char type;
  std::uint32_t code;
  std::string payload;
  std::size_t wire_size;
  bool operator==(const SeenFrame&) const = default;
};

// Decodes `stream` delivered in chunks of the given sizes (cycled), consuming each frame as a
// session would and switching phase after the StartupMessage.
std::vector<SeenFrame> decode_in_chunks(const std::string& stream,
                                        const std::vector<std::size_t>& chunks) {
  FrameDecoder decoder;
  std::vector<SeenFrame> frames;
  std::string buffer;
  std::size_t delivered = 0;
  std::size_t chunk_index = 0;
  while (true) {
    const DecodeResult result = decoder.decode(as_span(buffer));
    if (const auto* frame = std::get_if<Frame>(&result)) {
      frames.push_back(
          {frame->type, frame->startup_code, to_string(frame->payload), frame->wire_size});
      if (frame->startup_code == kProtocolVersion30) decoder.set_phase(Phase::normal);
      buffer.erase(0, frame->wire_size);
      continue;
    }
    EXPECT_TRUE(std::holds_alternative<NeedMore>(result)) << "violation at byte " << delivered;
    if (!std::holds_alternative<NeedMore>(result)) return frames;
    const std::size_t need = std::get<NeedMore>(result).bytes;
    EXPECT_GE(need, 1u);
    // Never asks for more than the stream still holds: a reader blocking for `need` bytes
    // would otherwise hang on a well-formed peer.
    if (delivered == stream.size()) return frames;
    EXPECT_LE(need, stream.size() - delivered);
    const std::size_t size =
        std::min(chunks[chunk_index++ % chunks.size()], stream.size() - delivered);
    buffer.append(stream, delivered, size);
    delivered += size;
  }
}

TEST(FrameDecoder, ByteByByteGivesTheSameFrames) {
  const std::string stream = conversation();
  const std::vector<SeenFrame> whole = decode_in_chunks(stream, {stream.size()});
  ASSERT_EQ(whole.size(), 6u);
  EXPECT_EQ(whole[1].code, kProtocolVersion30);
  EXPECT_EQ(whole[2].type, 'Q');
  EXPECT_EQ(whole[2].payload, std::string("SELECT 1\0", 9));
  EXPECT_EQ(decode_in_chunks(stream, {1}), whole);
}

TEST(FrameDecoder, RandomChunkingGivesTheSameFrames) {
  const std::string stream = conversation();
  const std::vector<SeenFrame> whole = decode_in_chunks(stream, {stream.size()});
  std::mt19937 random(20240601);
  for (int round = 0; round < 200; ++round) {
    std::vector<std::size_t> chunks(7);
    for (std::size_t& chunk : chunks) chunk = 1 + random() % 13;
    ASSERT_EQ(decode_in_chunks(stream, chunks), whole) << "round " << round;
  }
}

}  // namespace
}  // namespace pgvigil::proxy::wire
