#include "proxy/wire/backend_messages.hpp"

#include "proxy/wire/message_writer.hpp"

namespace pgvigil::proxy::wire {
namespace {

void append_auth(std::string& out, std::uint32_t code, std::string_view data = {}) {
  MessageWriter message(out, 'R');
  message.int32(code);
  message.bytes(data);
}

void append_error_fields(std::string& out, char type, const ErrorFields& fields) {
  MessageWriter message(out, type);
  const std::string_view severity = severity_name(fields.severity);
  // 'S' is meant to be localised and 'V' never is; the proxy does not localise, so both agree.
  message.byte('S');
  message.cstring(severity);
  message.byte('V');
  message.cstring(severity);
  message.byte('C');
  message.cstring(fields.sqlstate);
  message.byte('M');
  message.cstring(fields.message);
  if (!fields.detail.empty()) {
    message.byte('D');
    message.cstring(fields.detail);
  }
  if (!fields.hint.empty()) {
    message.byte('H');
    message.cstring(fields.hint);
  }
  message.byte('\0');
}

}  // namespace

void append_authentication_ok(std::string& out) { append_auth(out, kAuthOk); }

void append_authentication_cleartext_password(std::string& out) {
  append_auth(out, kAuthCleartext);
}

void append_authentication_md5_password(std::string& out, const std::array<std::uint8_t, 4>& salt) {
  append_auth(out, kAuthMd5,
              std::string_view(reinterpret_cast<const char*>(salt.data()), salt.size()));
}

void append_authentication_sasl(std::string& out, std::span<const std::string_view> mechanisms) {
  MessageWriter message(out, 'R');
  message.int32(kAuthSasl);
  for (const std::string_view mechanism : mechanisms) message.cstring(mechanism);
  message.byte('\0');
}

void append_authentication_sasl_continue(std::string& out, std::string_view server_first_message) {
  append_auth(out, kAuthSaslContinue, server_first_message);
}

void append_authentication_sasl_final(std::string& out, std::string_view server_final_message) {
  append_auth(out, kAuthSaslFinal, server_final_message);
}

void append_parameter_status(std::string& out, std::string_view name, std::string_view value) {
  MessageWriter message(out, 'S');
  message.cstring(name);
  message.cstring(value);
}

void append_backend_key_data(std::string& out, std::uint32_t process_id, std::uint32_t secret_key) {
  MessageWriter message(out, 'K');
  message.int32(process_id);
  message.int32(secret_key);
}

void append_ready_for_query(std::string& out, TransactionStatus status) {
  MessageWriter message(out, 'Z');
  message.byte(static_cast<char>(status));
}

void append_negotiate_protocol_version(std::string& out, std::uint16_t newest_minor,
                                       std::span<const std::string> unrecognised_options) {
  MessageWriter message(out, 'v');
  message.int32((kProtocolMajor3 << 16) | newest_minor);
  message.int32(static_cast<std::uint32_t>(unrecognised_options.size()));
  for (const std::string& option : unrecognised_options) message.cstring(option);
}

std::string_view severity_name(Severity severity) {
  switch (severity) {
    case Severity::error:
      return "ERROR";
    case Severity::fatal:
      return "FATAL";
    case Severity::panic:
      return "PANIC";
    case Severity::warning:
      return "WARNING";
    case Severity::notice:
      return "NOTICE";
    case Severity::debug:
      return "DEBUG";
    case Severity::info:
      return "INFO";
    case Severity::log:
      return "LOG";
  }
  return "ERROR";
}

void append_error_response(std::string& out, const ErrorFields& fields) {
  append_error_fields(out, 'E', fields);
}

void append_notice_response(std::string& out, const ErrorFields& fields) {
  append_error_fields(out, 'N', fields);
}

void append_encryption_refusal(std::string& out) { out.push_back('N'); }

}  // namespace pgvigil::proxy::wire
