#pragma once
// One HTTPS request for tests (the admin endpoint with admin.tls): a fresh TLS connection that
// trusts only `ca_file`, checks nothing else, and is closed afterwards. Throws std::system_error
// when connecting, the handshake (an untrusted certificate included), writing or reading fails
// or the deadline passes.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>

#include "tests/metrics/http_client.hpp"

namespace pgvigil::test {

HttpResult https_request(const std::string& host, std::uint16_t port, std::string_view method,
                         std::string_view target, const std::filesystem::path& ca_file,
                         const std::map<std::string, std::string>& extra_headers = {},
                         std::chrono::milliseconds timeout = std::chrono::seconds(5));

}  // namespace pgvigil::test
