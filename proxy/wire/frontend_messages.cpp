#include "proxy/wire/frontend_messages.hpp"

#include "proxy/wire/message_writer.hpp"
#include "proxy/wire/protocol.hpp"

namespace pgvigil::proxy::wire {

void append_startup_message(std::string& out, std::span<const StartupParameter> parameters) {
  MessageWriter message(out, 0);
  message.int32(kProtocolVersion30);
  for (const StartupParameter& parameter : parameters) {
    message.cstring(parameter.name);
    message.cstring(parameter.value);
  }
  message.byte('\0');
}

void append_ssl_request(std::string& out) {
  MessageWriter message(out, 0);
  message.int32(kSslRequestCode);
}

void append_gssenc_request(std::string& out) {
  MessageWriter message(out, 0);
  message.int32(kGssEncRequestCode);
}

void append_cancel_request(std::string& out, std::uint32_t process_id, std::uint32_t secret_key) {
  MessageWriter message(out, 0);
  message.int32(kCancelRequestCode);
  message.int32(process_id);
  message.int32(secret_key);
}

void append_query(std::string& out, std::string_view sql) {
  MessageWriter message(out, 'Q');
  message.cstring(sql);
}

void append_sync(std::string& out) { MessageWriter message(out, 'S'); }

void append_terminate(std::string& out) { MessageWriter message(out, 'X'); }

void append_password_message(std::string& out, std::string_view password) {
  MessageWriter message(out, 'p');
  message.cstring(password);
}

void append_sasl_initial_response(std::string& out, std::string_view mechanism,
                                  std::string_view client_first_message) {
  MessageWriter message(out, 'p');
  message.cstring(mechanism);
  message.int32(static_cast<std::uint32_t>(client_first_message.size()));
  message.bytes(client_first_message);
}

void append_sasl_response(std::string& out, std::string_view client_final_message) {
  MessageWriter message(out, 'p');
  message.bytes(client_final_message);
}

}  // namespace pgvigil::proxy::wire
