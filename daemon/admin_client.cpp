#include "daemon/admin_client.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <iostream>
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

Answer post(const AdminSettings& admin, const std::string& target) {
  asio::io_context io;
  tcp::socket socket(io);
  socket.connect(tcp::endpoint(endpoint_address(admin), admin.port));
  http::request<http::empty_body> request{http::verb::post, target, 11};
  request.set(http::field::host, admin.host);
  request.set(http::field::user_agent, "pgvigil");
  if (!admin.token.empty()) request.set(http::field::authorization, "Bearer " + admin.token);
  request.keep_alive(false);
  http::write(socket, request);
  boost::beast::flat_buffer buffer;
  http::response<http::string_body> response;
  http::read(socket, buffer, response);
  Answer answer{response.result_int(), response.body(), 0};
  const auto open = response["X-Pgvigil-Open-Connections"];
  if (!open.empty()) answer.open_connections = std::stoi(std::string(open));
  return answer;
}

}  // namespace

int run_control_command(const Config& config, const ControlCommand& command) {
  const std::string target = "/" + command.action + "?database=" + command.database;
  const auto until = std::chrono::steady_clock::now() + command.wait;
  try {
    while (true) {
      const auto answer = post(config.admin, target);
      if (answer.status != 200) {
        std::cerr << "pgvigil " << command.action << ": HTTP " << answer.status << ": "
                  << answer.body;
        return 1;
      }
      // A pause is asked again until it is complete: asking again changes nothing.
      const bool complete = command.action != "pause" || answer.open_connections == 0;
      if (complete || std::chrono::steady_clock::now() >= until) {
        std::cout << answer.body;
        return complete ? 0 : 2;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  } catch (const std::exception& error) {
    std::cerr << "pgvigil " << command.action << ": cannot reach the admin endpoint "
              << config.admin.host << ":" << config.admin.port << ": " << error.what() << "\n";
    return 1;
  }
}

}  // namespace pgvigil::daemon
