#include "proxy/auth/md5_auth.hpp"

#include "proxy/auth/crypto.hpp"

namespace pgvigil::proxy::auth {
namespace {

constexpr std::string_view kMd5Prefix = "md5";
constexpr std::size_t kHexSize = 32;

}  // namespace

bool is_md5_hash(std::string_view secret) {
  if (secret.size() != kMd5Prefix.size() + kHexSize || !secret.starts_with(kMd5Prefix))
    return false;
  for (const char c : secret.substr(kMd5Prefix.size())) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::string md5_stored_hash(std::string_view user, std::string_view password) {
  std::string input(password);
  input.append(user);
  return std::string(kMd5Prefix) + md5_hex(as_bytes(input));
}

std::string md5_client_response(std::string_view stored_hash, const Md5Salt& salt) {
  std::string input(stored_hash.substr(kMd5Prefix.size()));
  input.append(reinterpret_cast<const char*>(salt.data()), salt.size());
  return std::string(kMd5Prefix) + md5_hex(as_bytes(input));
}

bool md5_verify(std::string_view user, std::string_view secret, const Md5Salt& salt,
                std::string_view client_response) {
  const std::string stored =
      is_md5_hash(secret) ? std::string(secret) : md5_stored_hash(user, secret);
  return constant_time_equal(as_bytes(md5_client_response(stored, salt)),
                             as_bytes(client_response));
}

}  // namespace pgvigil::proxy::auth
