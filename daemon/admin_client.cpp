#include "daemon/admin_client.hpp"

#include <sys/socket.h>
#include <sys/time.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <iostream>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <thread>

namespace pgvigil::daemon {
namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

namespace {

struct Answer {
  unsigned status = 0;
  std::string body;
  int open_connections = 0;
  bool paused = false;
};

// The address to reach the endpoint at: a wildcard listen address is reached on loopback.
asio::ip::address endpoint_address(const AdminSettings& admin) {
  std::string host = admin.host;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  auto address = asio::ip::make_address(host);
  if (address.is_unspecified()) {
    return address.is_v6() ? asio::ip::address(asio::ip::address_v6::loopback())
                           : asio::ip::address(asio::ip::address_v4::loopback());
  }
  return address;
}

template <typename Stream>
Answer exchange(Stream& stream, const AdminSettings& admin, http::verb method,
                const std::string& target) {
  http::request<http::empty_body> request{method, target, 11};
  request.set(http::field::host, admin.host);
  request.set(http::field::user_agent, "pgvigil");
  if (!admin.token.empty()) request.set(http::field::authorization, "Bearer " + admin.token);
  request.keep_alive(false);
  http::write(stream, request);
  boost::beast::flat_buffer buffer;
  http::response<http::string_body> response;
  http::read(stream, buffer, response);
  Answer answer{response.result_int(), response.body(), 0, false};
  const auto open = response["X-Pgvigil-Open-Connections"];
  if (!open.empty()) answer.open_connections = std::stoi(std::string(open));
  answer.paused = response["X-Pgvigil-Paused"] == "1";
  return answer;
}

// Over HTTPS the endpoint must show exactly the certificate of admin.tls.cert_file (or one its
// chain there vouches for): the command and the daemon read the same file, so no name check
// or outside CA is needed, and nothing else can pass for the daemon.
Answer exchange_tls(tcp::socket& socket, const AdminSettings& admin, http::verb method,
                    const std::string& target) {
  asio::ssl::context context(asio::ssl::context::tls_client);
  context.set_options(asio::ssl::context::no_sslv2 | asio::ssl::context::no_sslv3 |
                      asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
  context.load_verify_file(admin.tls_cert_file);
  X509_STORE_set_flags(SSL_CTX_get_cert_store(context.native_handle()), X509_V_FLAG_PARTIAL_CHAIN);
  context.set_verify_mode(asio::ssl::verify_peer);
  asio::ssl::stream<tcp::socket&> secure(socket, context);
  secure.handshake(asio::ssl::stream_base::client);
  auto answer = exchange(secure, admin, method, target);
  boost::system::error_code ignored;
  secure.shutdown(ignored);  // close_notify; the daemon's may or may not come first
  return answer;
}

Answer send(const AdminSettings& admin, http::verb method, const std::string& target) {
  asio::io_context io;
  tcp::socket socket(io);
  socket.connect(tcp::endpoint(endpoint_address(admin), admin.port));
  // A daemon that stops answering must not hang the operator's command: blocking reads and
  // writes give up after 10 s.
  const timeval limit{10, 0};
  ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
  if (admin.tls) return exchange_tls(socket, admin, method, target);
  return exchange(socket, admin, method, target);
}

}  // namespace

int run_control_command(const Config& config, const ControlCommand& command) {
  const std::string target = "/" + command.action + "?database=" + command.database;
  const auto until = std::chrono::steady_clock::now() + command.wait;
  try {
    auto answer = send(config.admin, http::verb::post, target);
    // A pause is complete once no connection is left: the state is read (GET changes nothing,
    // so a resume sent meanwhile from elsewhere is not undone) until then.
    while (answer.status == 200 && command.action == "pause" && answer.paused &&
           answer.open_connections > 0 && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      answer = send(config.admin, http::verb::get, target);
    }
    if (answer.status != 200) {
      std::cerr << "pgvigil " << command.action << ": HTTP " << answer.status << ": "
                << answer.body;
      return 1;
    }
    std::cout << answer.body;
    if (command.action != "pause") return 0;
    if (!answer.paused) {
      std::cerr << "pgvigil pause: the database was resumed while waiting\n";
      return 1;
    }
    return answer.open_connections == 0 ? 0 : 2;
  } catch (const std::exception& error) {
    std::cerr << "pgvigil " << command.action << ": cannot reach the admin endpoint "
              << config.admin.host << ":" << config.admin.port << ": " << error.what() << "\n";
    return 1;
  }
}

}  // namespace pgvigil::daemon
