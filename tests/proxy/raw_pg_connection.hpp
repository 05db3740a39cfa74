#pragma once
// A PostgreSQL client at the byte level, for tests that send what no driver would: a blocking TCP
// socket to 127.0.0.1, raw writes, and reads of whole backend messages with a deadline. Used to
// assert exactly what pgvigil answers to malformed input (ErrorResponse fields, 'N', silence) and
// that it closes the connection afterwards.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace pgvigil::testing {

// Builders for frontend messages, big-endian as on the wire.
std::string be32(std::uint32_t value);
// A StartupMessage for protocol 3.0 (or `code`) with the given name/value pairs, e.g.
// startup_packet({{"user", "postgres"}, {"database", "app"}}).
std::string startup_packet(const std::map<std::string, std::string>& parameters,
                           std::uint32_t code = 196608);
// A typed message: type, int32 length (payload + 4), payload.
std::string typed_message(char type, std::string_view payload);

struct BackendMessage {
  char type = 0;
  std::string payload;
};

// The fields of an ErrorResponse or NoticeResponse payload, keyed by field code ('S', 'C', 'M',
// 'V', 'D', 'H', ...). Empty when the payload is not well formed.
std::map<char, std::string> error_fields(std::string_view payload);

class RawPgConnection {
 public:
  enum class ReadEnd { message, closed, timeout };

  // Connects to 127.0.0.1:port. Throws std::system_error on failure. receive_buffer > 0 fixes
  // the socket's receive buffer (no autotuning), so a client that does not read stalls its
  // sender soon: loopback autotuning here grows to 32 MB.
  explicit RawPgConnection(std::uint16_t port, int receive_buffer = 0);
  ~RawPgConnection();
  RawPgConnection(const RawPgConnection&) = delete;
  RawPgConnection& operator=(const RawPgConnection&) = delete;

  // Writes all bytes; false when the peer has already closed (EPIPE, ECONNRESET): a server that
  // rejects early may close before the rest arrives, which is not the test's failure.
  bool send(std::string_view bytes);
  // shutdown(SHUT_WR): the server reads end-of-file after what was sent.
  void finish_sending();
  // Sends the bytes and shuts down sending so that both leave in one TCP segment (TCP_CORK
  // holds the data until the FIN joins it): the server's first read of them also has the FIN
  // queued behind, as when a client sends its last request and exits. false as send() does.
  bool send_then_finish(std::string_view bytes);

  // One byte (the answer to SSLRequest / GSSENCRequest) within timeout.
  ReadEnd read_byte(char& byte, std::chrono::milliseconds timeout);
  // One whole backend message (type, int32 length, payload) within timeout. A connection closed
  // or reset in the middle of a message counts as closed.
  ReadEnd read_message(BackendMessage& message, std::chrono::milliseconds timeout);
  // Reads messages until one of type `type` arrives (-> it), or the connection ends or times out
  // (-> nullopt). Messages of other types are skipped.
  std::optional<BackendMessage> read_until(char type, std::chrono::milliseconds timeout);
  // What the first read returns once bytes arrive within timeout ("" on close or timeout): on
  // loopback, one write of the server's (up to 64 KiB) arrives whole, so this tells whether
  // messages left in one write.
  std::string read_first_arrival(std::chrono::milliseconds timeout);
  // true when the server closes (EOF or reset) within timeout with nothing more to read; false
  // when data arrives or the wait runs out. Bytes read are kept in unread_ for the next read.
  bool closed_by_server_within(std::chrono::milliseconds timeout);
  // The connection ended with a reset (RST), not an orderly close: some client stacks then drop
  // what they had received and not yet read.
  bool was_reset() const { return reset_; }

  // Sends a protocol 3.0 startup for user/database and reads up to ReadyForQuery (trust auth).
  // true on ReadyForQuery; false on ErrorResponse, close or timeout (`failure` says which).
  bool login(const std::string& user, const std::string& database,
             std::chrono::milliseconds timeout, std::string* failure = nullptr);

  // What the kernel holds on this socket right now, for tests that wait for a stalled stream:
  // bytes received but not yet read by us (SIOCINQ), and bytes sent that the peer has not yet
  // acknowledged (SIOCOUTQ). -1 when the ioctl fails.
  int unread_in_kernel() const;
  int unacknowledged_sent() const;

 private:
  // Appends whatever arrives within the deadline to unread_; false at EOF/reset or timeout
  // (closed_ tells which).
  bool fill(std::chrono::steady_clock::time_point deadline);

  int fd_ = -1;
  std::string unread_;
  bool closed_ = false;
  bool reset_ = false;
};

}  // namespace pgvigil::testing
