#pragma once
// PostgreSQL's "md5" password method: the stored hash is "md5" + md5(password + user), and the
// client answers a 4-byte salt with "md5" + md5(hex(stored hash without "md5") + salt).

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace pgvigil::proxy::auth {

using Md5Salt = std::array<std::uint8_t, 4>;

// True for "md5" followed by 32 lower-case hex digits: the form PostgreSQL stores.
bool is_md5_hash(std::string_view secret);

// "md5" + md5(password + user).
std::string md5_stored_hash(std::string_view user, std::string_view password);

// What a client sends for `salt`, given the stored hash ("md5..."). Also what the proxy sends to
// a server that asks for md5.
std::string md5_client_response(std::string_view stored_hash, const Md5Salt& salt);

// Checks a client's PasswordMessage against `secret` from the users file, which is either a
// plain password or an md5 stored hash. Constant time in the response's content.
bool md5_verify(std::string_view user, std::string_view secret, const Md5Salt& salt,
                std::string_view client_response);

}  // namespace pgvigil::proxy::auth
