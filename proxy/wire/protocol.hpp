#pragma once
// Constants of PostgreSQL's frontend/backend protocol 3.x that more than one codec needs.

#include <cstddef>
#include <cstdint>

namespace pgvigil::proxy::wire {

// Startup-phase request codes (the int32 after the length).
inline constexpr std::uint32_t kProtocolMajor3 = 3;
inline constexpr std::uint32_t kProtocolVersion30 = 196608;  // 3 << 16
inline constexpr std::uint32_t kCancelRequestCode = 80877102;
inline constexpr std::uint32_t kSslRequestCode = 80877103;
inline constexpr std::uint32_t kGssEncRequestCode = 80877104;

// Authentication request codes (the int32 after 'R').
inline constexpr std::uint32_t kAuthOk = 0;
inline constexpr std::uint32_t kAuthCleartext = 3;
inline constexpr std::uint32_t kAuthMd5 = 5;
inline constexpr std::uint32_t kAuthSasl = 10;
inline constexpr std::uint32_t kAuthSaslContinue = 11;
inline constexpr std::uint32_t kAuthSaslFinal = 12;

// PostgreSQL's own limits, so the proxy refuses exactly what a server would.
inline constexpr std::size_t kMaxStartupPacketSize = 10000;  // MAX_STARTUP_PACKET_LENGTH
inline constexpr std::size_t kMaxSmallMessageSize = 10000;   // PQ_SMALL_MESSAGE_LIMIT
inline constexpr std::size_t kMaxAuthMessageSize = 65535;    // PG_MAX_AUTH_TOKEN_LENGTH
inline constexpr std::size_t kMaxLargeMessageSize =
    0x3fffffff;  // PQ_LARGE_MESSAGE_LIMIT (1 GiB - 1)

// Length of the int32 length word, which counts itself.
inline constexpr std::size_t kLengthSize = 4;

// ReadyForQuery's status byte: whether a server connection may return to the pool.
enum class TransactionStatus : char {
  idle = 'I',
  in_transaction = 'T',
  failed = 'E',
};

}  // namespace pgvigil::proxy::wire
