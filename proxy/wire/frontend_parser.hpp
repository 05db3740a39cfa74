#pragma once
// Readers for the authentication replies a client sends in 'p' messages. Views point into the
// frame's payload.

#include <optional>
#include <span>
#include <string_view>

#include "proxy/wire/backend_parser.hpp"

namespace pgvigil::proxy::wire {

// PasswordMessage: one NUL-terminated string filling the payload exactly (cleartext or
// "md5..." response). nullopt when malformed.
std::optional<std::string_view> parse_password_message(std::span<const char> payload);

struct SaslInitialResponse {
  std::string_view mechanism;
  std::string_view data;  // the client-first-message; empty if the client sent length -1
};

// SASLInitialResponse: mechanism name, int32 data length (-1 for none), data.
std::optional<SaslInitialResponse> parse_sasl_initial_response(std::span<const char> payload);

// CancelRequest: Frame::payload of a startup frame with kCancelRequestCode (the decoder has
// already checked its length). The key has the same shape as the server's BackendKeyData.
std::optional<BackendKeyData> parse_cancel_request(std::span<const char> payload);

// SASLResponse: the whole payload is the message; nothing to check beyond framing.
inline std::string_view parse_sasl_response(std::span<const char> payload) {
  return {payload.data(), payload.size()};
}

}  // namespace pgvigil::proxy::wire
