#pragma once
// Reads whole protocol frames from a client during startup and authentication, where messages
// are small and few. (The relay does not use this: it forwards bytes without buffering messages.)

#include <boost/asio/awaitable.hpp>
#include <string>
#include <variant>

#include "proxy/client_error.hpp"
#include "stream/socket_stream.hpp"
#include "proxy/wire/frame_decoder.hpp"

namespace pgvigil::proxy {

struct OwnedFrame {
  char type = 0;
  std::uint32_t startup_code = 0;
  std::string payload;
};

class FrameReader {
 public:
  FrameReader(stream::SocketStream& stream, wire::DecoderLimits limits)
      : stream_(stream), decoder_(wire::Phase::startup, limits) {}

  // The next frame, or why there is none: a protocol violation (08P01), or the client gone
  // (an empty sqlstate: nothing to tell it).
  boost::asio::awaitable<std::variant<OwnedFrame, ClientError>> next();

  void enter_normal_phase() { decoder_.set_phase(wire::Phase::normal); }
  // Bytes were read past the last frame. After an SSLRequest they would be bytes a client sent in
  // the clear before TLS began, which a man in the middle could have injected.
  bool has_buffered() const { return !buffer_.empty(); }
  // Bytes read past the last frame (a client that sent its first query right after auth).
  // Empty means no capacity either: the session keeps this string while the client is idle.
  std::string take_leftover() { return buffer_.empty() ? std::string() : std::move(buffer_); }

 private:
  stream::SocketStream& stream_;
  wire::FrameDecoder decoder_;
  std::string buffer_;
};

}  // namespace pgvigil::proxy
