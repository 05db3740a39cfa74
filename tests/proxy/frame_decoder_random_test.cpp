// Deterministic fuzzing of FrameDecoder: random byte strings, some shaped like real headers so
// that deep paths are reached, must never crash the decoder or yield a frame past the input.

#include <gtest/gtest.h>

#include <random>

#include "proxy/wire/frame_decoder.hpp"
#include "tests/proxy/wire_bytes.hpp"

namespace pgvigil::proxy::wire {
namespace {

constexpr int kInputs = 10000;

std::string random_input(std::mt19937& random) {
  std::string bytes(random() % 64, '\0');
  for (char& byte : bytes) byte = static_cast<char>(random());
  // Half the inputs get a plausible header: a known type byte or startup code and a small length.
  if (random() % 2 == 0 && bytes.size() >= 9) {
    static const std::string types = "QPBEDCHSFXdcfpRZ";
    bytes[0] = types[random() % types.size()];
    const std::string length = test::be32(random() % 40);
    bytes.replace(1, 4, length);
    if (random() % 2 == 0) {
      bytes.replace(0, 4, test::be32(random() % 40));
      const std::uint32_t codes[] = {kProtocolVersion30, kSslRequestCode, kCancelRequestCode,
                                     kGssEncRequestCode, static_cast<std::uint32_t>(random())};
      bytes.replace(4, 4, test::be32(codes[random() % 5]));
    }
  }
  return bytes;
}

TEST(FrameDecoderRandom, NeverReportsAFrameLongerThanTheInput) {
  std::mt19937 random(42);
  const Phase phases[] = {Phase::startup, Phase::normal, Phase::backend};
  int frames_seen = 0;
  for (int i = 0; i < kInputs; ++i) {
    const std::string input = random_input(random);
    FrameDecoder decoder(phases[i % 3]);
    std::span<const char> rest(input.data(), input.size());
    // Consume frames until the decoder wants more or refuses, as a session would.
    while (true) {
      const DecodeResult result = decoder.decode(rest);
      if (const auto* need = std::get_if<NeedMore>(&result)) {
        ASSERT_GE(need->bytes, 1u);
        break;
      }
      if (std::holds_alternative<ProtocolViolation>(result)) break;
      const Frame& frame = std::get<Frame>(result);
      ++frames_seen;
      ASSERT_GE(frame.wire_size, 5u);
      ASSERT_LE(frame.wire_size, rest.size()) << "input " << i;
      ASSERT_GE(frame.payload.data(), rest.data());
      ASSERT_LE(frame.payload.data() + frame.payload.size(), rest.data() + frame.wire_size);
      if (decoder.phase() == Phase::startup && frame.startup_code == kProtocolVersion30) {
        decoder.set_phase(Phase::normal);
      }
      rest = rest.subspan(frame.wire_size);
    }
  }
  // Guards the generator: a test that never decodes a frame would prove nothing.
  EXPECT_GT(frames_seen, kInputs / 20);
}

}  // namespace
}  // namespace pgvigil::proxy::wire
