#pragma once
// Appends one typed message to a buffer: type byte, a length word patched when the message ends,
// then the body. Builders use it so no builder computes a length by hand.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace pgvigil::proxy::wire {

class MessageWriter {
 public:
  // type 0 writes an untyped (startup-phase) packet.
  MessageWriter(std::string& out, char type);
  ~MessageWriter();  // patches the length
  MessageWriter(const MessageWriter&) = delete;
  MessageWriter& operator=(const MessageWriter&) = delete;

  void byte(char value) { out_.push_back(value); }
  void int16(std::uint16_t value);
  void int32(std::uint32_t value);
  void bytes(std::string_view value) { out_.append(value); }
  // A NUL-terminated string. Anything from an embedded NUL on is cut: it would end the string
  // early on the wire and shift every later field.
  void cstring(std::string_view value);

 private:
  std::string& out_;
  std::size_t length_at_;
};

}  // namespace pgvigil::proxy::wire
