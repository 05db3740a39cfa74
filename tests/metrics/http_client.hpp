#pragma once
// A tiny blocking HTTP/1.1 client for tests: real TCP, one request at a time, a deadline on
// every exchange. Not for production code (it runs its own private io_context).

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

namespace pgvigil::test {

struct HttpResult {
  int status = 0;
  std::string body;
  // Header names in lower case (HTTP names are case-insensitive); a repeated header keeps
  // its last value.
  std::map<std::string, std::string> headers;

  // The value of header `name` (any case), or "" when absent.
  std::string header(std::string_view name) const;
};

// One TCP connection that can carry several requests (keep-alive). Throws std::system_error
// when connecting, writing or reading fails or a deadline passes (beast::error::timeout).
class HttpConnection {
 public:
  HttpConnection(const std::string& host, std::uint16_t port,
                 std::chrono::milliseconds timeout = std::chrono::seconds(5));
  ~HttpConnection();
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  // Sends `method target` (HTTP/1.1, keep-alive, plus `extra_headers`) and waits for the whole
  // response.
  HttpResult request(std::string_view method, std::string_view target,
                     const std::map<std::string, std::string>& extra_headers = {});

  // Waits up to `within` for the server to close the connection without sending anything:
  // true on a clean close or reset, false when data arrives or the wait runs out.
  bool closed_by_server_within(std::chrono::milliseconds within);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// One request on a fresh connection, closed afterwards.
HttpResult http_request(const std::string& host, std::uint16_t port, std::string_view method,
                        std::string_view target,
                        std::chrono::milliseconds timeout = std::chrono::seconds(5));

inline HttpResult http_get(const std::string& host, std::uint16_t port, std::string_view target,
                           std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  return http_request(host, port, "GET", target, timeout);
}

}  // namespace pgvigil::test
