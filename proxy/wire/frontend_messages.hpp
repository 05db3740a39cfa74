#pragma once
// Builders for frontend messages, used by the tests to play a client against the proxy and its
// decoders. (pgvigil talks to servers through libpq, which builds its own.)

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "proxy/wire/startup_message.hpp"

namespace pgvigil::proxy::wire {

// Protocol 3.0 StartupMessage with the given parameters in order (user first, by convention).
void append_startup_message(std::string& out, std::span<const StartupParameter> parameters);
void append_ssl_request(std::string& out);
void append_gssenc_request(std::string& out);
void append_cancel_request(std::string& out, std::uint32_t process_id, std::uint32_t secret_key);

void append_query(std::string& out, std::string_view sql);  // "" is the cheapest ping
void append_sync(std::string& out);
void append_terminate(std::string& out);

// The three meanings of 'p', told apart by the authentication request that preceded it.
void append_password_message(std::string& out, std::string_view password);
void append_sasl_initial_response(std::string& out, std::string_view mechanism,
                                  std::string_view client_first_message);
void append_sasl_response(std::string& out, std::string_view client_final_message);

}  // namespace pgvigil::proxy::wire
