#include "tests/metrics/https_client.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <system_error>

namespace pgvigil::test {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

HttpResult https_request(const std::string& host, std::uint16_t port, std::string_view method,
                         std::string_view target, const std::filesystem::path& ca_file,
                         const std::map<std::string, std::string>& extra_headers,
                         std::chrono::milliseconds timeout) {
  asio::io_context io;
  asio::ssl::context context(asio::ssl::context::tls_client);
  context.load_verify_file(ca_file.string());
  context.set_verify_mode(asio::ssl::verify_peer);
  beast::tcp_stream tcp(io);
  asio::ssl::stream<beast::tcp_stream&> secure(tcp, context);
  http::request<http::empty_body> request{http::string_to_verb(method), target, 11};
  request.set(http::field::host, host);
  for (const auto& [name, value] : extra_headers) request.set(name, value);
  request.keep_alive(false);
  http::response<http::string_body> response;
  beast::flat_buffer buffer;
  beast::error_code error;
  std::string step = "connect";
  // Asynchronous steps run on the private io_context, so tcp_stream's deadline applies to all.
  tcp.expires_after(timeout);
  tcp.async_connect(
      asio::ip::tcp::endpoint(asio::ip::make_address(host), port), [&](beast::error_code ec) {
        if ((error = ec)) return;
        step = "TLS handshake";
        secure.async_handshake(asio::ssl::stream_base::client, [&](beast::error_code ec) {
          if ((error = ec)) return;
          step = "write";
          http::async_write(secure, request, [&](beast::error_code ec, std::size_t) {
            if ((error = ec)) return;
            step = "read";
            http::async_read(secure, buffer, response,
                             [&](beast::error_code ec, std::size_t) { error = ec; });
          });
        });
      });
  io.run();
  if (error) throw std::system_error(error, "https client: " + step);
  HttpResult result;
  result.status = static_cast<int>(response.result_int());
  result.body = response.body();
  for (const auto& field : response) {
    std::string name(field.name_string());
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    result.headers[name] = std::string(field.value());
  }
  return result;
}

}  // namespace pgvigil::test
