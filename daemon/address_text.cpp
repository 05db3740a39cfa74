#include "daemon/address_text.hpp"

#include <charconv>
#include <stdexcept>

namespace pgvigil::daemon::detail {

std::optional<std::uint16_t> parse_port(std::string_view text) {
  int port = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), port);
  if (error != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  if (port < 1 || port > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(port);
}

std::pair<std::string, std::uint16_t> parse_listen(std::string_view text) {
  std::string_view host;
  std::string_view rest;
  if (text.starts_with("[")) {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos)
      throw std::invalid_argument("missing ']' after IPv6 address");
    host = text.substr(1, close - 1);
    rest = text.substr(close + 1);
  } else {
    const std::size_t colon = text.find(':');
    if (colon == std::string_view::npos) throw std::invalid_argument("missing :port");
    host = text.substr(0, colon);
    rest = text.substr(colon);
    if (rest.find(':', 1) != std::string_view::npos) {
      throw std::invalid_argument("put an IPv6 address in brackets, e.g. [::1]:9930");
    }
  }
  if (host.empty()) throw std::invalid_argument("missing host");
  if (!rest.starts_with(":")) throw std::invalid_argument("missing :port");
  const auto port = parse_port(rest.substr(1));
  if (!port) throw std::invalid_argument("port must be a number from 1 to 65535");
  return {std::string(host), *port};
}

std::pair<std::string, std::uint16_t> parse_server_host(std::string_view text,
                                                        std::uint16_t default_port) {
  if (text.empty()) throw std::invalid_argument("empty entry");
  if (text.starts_with("[")) return parse_listen(text);
  const std::size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return {std::string(text), default_port};
  if (!text.starts_with("/") && text.find(':') != colon) {
    throw std::invalid_argument("put an IPv6 address in brackets, e.g. [::1]:5432");
  }
  return parse_listen(text);
}
}  // namespace pgvigil::daemon::detail
