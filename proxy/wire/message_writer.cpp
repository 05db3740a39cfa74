#include "proxy/wire/message_writer.hpp"

#include "proxy/wire/byte_io.hpp"

namespace pgvigil::proxy::wire {

MessageWriter::MessageWriter(std::string& out, char type) : out_(out) {
  if (type != 0) out_.push_back(type);
  length_at_ = out_.size();
  append_uint32(out_, 0);
}

MessageWriter::~MessageWriter() {
  const auto length = static_cast<std::uint32_t>(out_.size() - length_at_);
  for (int i = 0; i < 4; ++i) out_[length_at_ + i] = static_cast<char>(length >> (24 - 8 * i));
}

void MessageWriter::int16(std::uint16_t value) { append_uint16(out_, value); }

void MessageWriter::int32(std::uint32_t value) { append_uint32(out_, value); }

void MessageWriter::cstring(std::string_view value) {
  out_.append(value.substr(0, value.find('\0')));
  out_.push_back('\0');
}

}  // namespace pgvigil::proxy::wire
