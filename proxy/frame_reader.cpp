#include "proxy/frame_reader.hpp"


namespace pgvigil::proxy {

boost::asio::awaitable<std::variant<OwnedFrame, ClientError>> FrameReader::next() {
  while (true) {
    const auto result = decoder_.decode(std::span<const char>(buffer_.data(), buffer_.size()));
    if (const auto* frame = std::get_if<wire::Frame>(&result)) {
      OwnedFrame owned{frame->type, frame->startup_code,
                       std::string(frame->payload.begin(), frame->payload.end())};
      buffer_.erase(0, frame->wire_size);
      co_return owned;
    }
    if (const auto* violation = std::get_if<wire::ProtocolViolation>(&result)) {
      // An old or future protocol version is a feature PostgreSQL would refuse as 0A000; the
      // special request codes (1234.xxxx) and garbage stay protocol violations.
      const auto major = violation->value >> 16;
      if (violation->kind == wire::ViolationKind::unknown_startup_code && major != 3 &&
          major < 1234) {
        co_return ClientError{sqlstate::kFeatureNotSupported,
                              "unsupported frontend protocol " + std::to_string(major) + "." +
                                  std::to_string(violation->value & 0xffff) +
                                  ": pgvigil supports 3.0",
                              "", ""};
      }
      co_return ClientError{sqlstate::kProtocolViolation, violation->message(), "", ""};
    }
    // Read straight into the buffer's tail: a chunk array here would live in this coroutine's
    // frame, kilobytes per client for as long as a client takes to send its startup packet.
    constexpr std::size_t kReadSize = 512;
    const auto used = buffer_.size();
    buffer_.resize(used + kReadSize);
    boost::system::error_code ec;
    const auto n = co_await stream_.read_some(std::span<char>(buffer_.data() + used, kReadSize), ec);
    buffer_.resize(used + n);
    if (ec) co_return ClientError{"", "client went away: " + ec.message(), "", ""};
  }
}

}  // namespace pgvigil::proxy
