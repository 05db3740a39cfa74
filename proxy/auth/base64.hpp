#pragma once
// Standard base64 (RFC 4648, with padding), as SCRAM and PostgreSQL's verifiers use it.

#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "proxy/auth/crypto.hpp"

namespace pgvigil::proxy::auth {

std::string base64_encode(std::span<const std::uint8_t> data);

// Strict: only the base64 alphabet, length a multiple of 4, '=' only as final padding. nullopt
// otherwise, so a peer cannot smuggle whitespace or junk past a comparison.
std::optional<Bytes> base64_decode(std::string_view text);

}  // namespace pgvigil::proxy::auth
