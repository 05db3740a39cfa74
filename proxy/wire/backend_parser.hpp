#pragma once
// Readers for server messages, used by the tests to check what pgvigil sends its clients, and by
// the relay for ParameterStatus (the settings a client changes in transaction pooling); the relay
// reads the other messages by their headers only (proxy/relay/message_scanner.hpp). Each takes
// Frame::payload of a frame of the matching type and returns nullopt when the payload is
// malformed. Views point into it.

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "proxy/wire/protocol.hpp"

namespace pgvigil::proxy::wire {

// 'Z': tells whether the server connection may go back to the pool.
std::optional<TransactionStatus> parse_ready_for_query(std::span<const char> payload);

// 'E' or 'N'. Fields the relay does not use are skipped.
struct ErrorResponseView {
  std::string_view severity;  // non-localised ('V') when present, else 'S'
  std::string_view sqlstate;
  std::string_view message;
  std::string_view detail;
  std::string_view hint;
};
std::optional<ErrorResponseView> parse_error_response(std::span<const char> payload);

// 'S'.
struct ParameterStatusView {
  std::string_view name;
  std::string_view value;
};
std::optional<ParameterStatusView> parse_parameter_status(std::span<const char> payload);

// 'K'. Protocol 3.0 only: 3.2 (PostgreSQL 18) allows longer secret keys, refused here.
struct BackendKeyData {
  std::uint32_t process_id = 0;
  std::uint32_t secret_key = 0;
};
std::optional<BackendKeyData> parse_backend_key_data(std::span<const char> payload);

}  // namespace pgvigil::proxy::wire
