#include "tests/metrics/http_client.hpp"

#include <algorithm>
#include <cctype>
#include <system_error>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

namespace pgvigil::test {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;

namespace {

std::string lower(std::string_view text) {
  std::string result(text);
  std::ranges::transform(result, result.begin(),
                         [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return result;
}

void throw_if(const beast::error_code& error, const std::string& what) {
  if (error) throw std::system_error(error, "http client: " + what);
}

}  // namespace

std::string HttpResult::header(std::string_view name) const {
  const auto found = headers.find(lower(name));
  return found == headers.end() ? std::string() : found->second;
}

// Blocking calls are async operations run to completion on a private io_context, because
// beast::tcp_stream's deadlines only apply to asynchronous operations.
struct HttpConnection::Impl {
  asio::io_context io;
  beast::tcp_stream stream{io};
  beast::flat_buffer buffer;
  std::chrono::milliseconds timeout;
  std::string host;

  // Runs the operation started by `start` (which must store its error) to completion.
  template <typename Start>
  beast::error_code run(std::chrono::milliseconds deadline, Start start) {
    beast::error_code result;
    stream.expires_after(deadline);
    start(result);
    io.restart();
    io.run();
    return result;
  }
};

HttpConnection::HttpConnection(const std::string& host, std::uint16_t port,
                               std::chrono::milliseconds timeout)
    : impl_(std::make_unique<Impl>()) {
  impl_->timeout = timeout;
  impl_->host = host;
  beast::error_code error;
  const tcp::endpoint endpoint(asio::ip::make_address(host, error), port);
  throw_if(error, "bad address " + host);
  error = impl_->run(timeout, [&](beast::error_code& out) {
    impl_->stream.async_connect(endpoint, [&out](beast::error_code ec) { out = ec; });
  });
  throw_if(error, "connect to " + host + ":" + std::to_string(port));
}

HttpConnection::~HttpConnection() = default;

HttpResult HttpConnection::request(std::string_view method, std::string_view target,
                                   const std::map<std::string, std::string>& extra_headers) {
  http::request<http::empty_body> request{http::string_to_verb(method), target, 11};
  if (request.method() == http::verb::unknown) request.method_string(method);
  request.set(http::field::host, impl_->host);
  request.keep_alive(true);
  for (const auto& [name, value] : extra_headers) request.set(name, value);
  auto error = impl_->run(impl_->timeout, [&](beast::error_code& out) {
    http::async_write(impl_->stream, request,
                      [&out](beast::error_code ec, std::size_t) { out = ec; });
  });
  throw_if(error, "write request");

  http::response_parser<http::string_body> parser;
  // A response to HEAD has no body, whatever its Content-Length says.
  parser.skip(request.method() == http::verb::head);
  error = impl_->run(impl_->timeout, [&](beast::error_code& out) {
    http::async_read(impl_->stream, impl_->buffer, parser,
                     [&out](beast::error_code ec, std::size_t) { out = ec; });
  });
  throw_if(error, "read response");

  auto response = parser.release();
  HttpResult result;
  result.status = static_cast<int>(response.result_int());
  result.body = std::move(response.body());
  for (const auto& field : response) {
    result.headers[lower(field.name_string())] = std::string(field.value());
  }
  return result;
}

bool HttpConnection::closed_by_server_within(std::chrono::milliseconds within) {
  if (impl_->buffer.size() > 0) return false;  // Already holds unread data.
  char byte = 0;
  const auto error = impl_->run(within, [&](beast::error_code& out) {
    impl_->stream.async_read_some(asio::buffer(&byte, 1),
                                  [&out](beast::error_code ec, std::size_t) { out = ec; });
  });
  return error == asio::error::eof || error == asio::error::connection_reset;
}

HttpResult http_request(const std::string& host, std::uint16_t port, std::string_view method,
                        std::string_view target, std::chrono::milliseconds timeout) {
  HttpConnection connection(host, port, timeout);
  return connection.request(method, target);
}

}  // namespace pgvigil::test
