#pragma once
// The address texts config.yaml holds: ports, listen addresses and a database's hosts entries.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace pgvigil::daemon::detail {

// 1..65535; nullopt for anything else.
std::optional<std::uint16_t> parse_port(std::string_view text);
// "host:port" or "[v6 address]:port"; throws std::invalid_argument saying what is wrong.
std::pair<std::string, std::uint16_t> parse_listen(std::string_view text);
// A hosts entry: "host:port", "[v6]:port", "host" or "/socket/dir" (default_port), or
// "/socket/dir:port"; throws std::invalid_argument saying what is wrong.
std::pair<std::string, std::uint16_t> parse_server_host(std::string_view text,
                                                        std::uint16_t default_port);

}  // namespace pgvigil::daemon::detail
