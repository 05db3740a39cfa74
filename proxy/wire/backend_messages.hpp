#pragma once
// Builders for the messages the proxy sends to clients. Each appends one complete message to
// `out`, so a session can batch several (AuthenticationOk, ParameterStatus..., ReadyForQuery)
// into one write. Strings are cut at an embedded NUL (see MessageWriter::cstring).

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "proxy/wire/protocol.hpp"

namespace pgvigil::proxy::wire {

void append_authentication_ok(std::string& out);
void append_authentication_cleartext_password(std::string& out);
void append_authentication_md5_password(std::string& out, const std::array<std::uint8_t, 4>& salt);
// Offer only mechanisms the proxy implements: "SCRAM-SHA-256", never "-PLUS" (see ScramServer).
void append_authentication_sasl(std::string& out, std::span<const std::string_view> mechanisms);
void append_authentication_sasl_continue(std::string& out, std::string_view server_first_message);
void append_authentication_sasl_final(std::string& out, std::string_view server_final_message);

void append_parameter_status(std::string& out, std::string_view name, std::string_view value);
void append_backend_key_data(std::string& out, std::uint32_t process_id, std::uint32_t secret_key);
void append_ready_for_query(std::string& out, TransactionStatus status);

// The newest 3.x minor the proxy speaks and the _pq_.* options it did not recognise; sent right
// after the client asked for a newer minor or for unknown protocol options.
void append_negotiate_protocol_version(std::string& out, std::uint16_t newest_minor,
                                       std::span<const std::string> unrecognised_options);

enum class Severity { error, fatal, panic, warning, notice, debug, info, log };

// The non-localised severity keyword ("ERROR", "FATAL", ...).
std::string_view severity_name(Severity severity);

// Fields of ErrorResponse/NoticeResponse. Empty detail or hint are left out.
struct ErrorFields {
  Severity severity = Severity::error;
  std::string_view sqlstate;  // five characters, e.g. "08P01"
  std::string_view message;
  std::string_view detail;
  std::string_view hint;
};

void append_error_response(std::string& out, const ErrorFields& fields);
void append_notice_response(std::string& out, const ErrorFields& fields);

// The single byte that answers SSLRequest or GSSENCRequest with "not supported here"; the
// client then sends its StartupMessage in clear (or gives up, if sslmode=require).
void append_encryption_refusal(std::string& out);

}  // namespace pgvigil::proxy::wire
