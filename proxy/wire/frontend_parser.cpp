#include "proxy/wire/frontend_parser.hpp"

#include "proxy/wire/byte_io.hpp"

namespace pgvigil::proxy::wire {

std::optional<std::string_view> parse_password_message(std::span<const char> payload) {
  const std::string_view body(payload.data(), payload.size());
  // The terminator must be the last byte: anything after it would be silently ignored otherwise.
  if (body.empty() || body.find('\0') != body.size() - 1) return std::nullopt;
  return body.substr(0, body.size() - 1);
}

std::optional<SaslInitialResponse> parse_sasl_initial_response(std::span<const char> payload) {
  const std::string_view body(payload.data(), payload.size());
  const std::size_t name_end = body.find('\0');
  if (name_end == std::string_view::npos || body.size() - name_end - 1 < 4) return std::nullopt;
  const std::uint32_t length = read_uint32(payload.subspan(name_end + 1));
  const std::string_view rest = body.substr(name_end + 5);
  SaslInitialResponse response{body.substr(0, name_end), {}};
  if (length == 0xffffffff) {  // -1: no initial data
    if (!rest.empty()) return std::nullopt;
    return response;
  }
  if (length != rest.size()) return std::nullopt;
  response.data = rest;
  return response;
}

std::optional<BackendKeyData> parse_cancel_request(std::span<const char> payload) {
  return parse_backend_key_data(payload);
}

}  // namespace pgvigil::proxy::wire
