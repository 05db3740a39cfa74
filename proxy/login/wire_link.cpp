// WireLink: its bytes (through TLS when the link has it), pgvigil's own statements and what the
// server sends about them.
#include "proxy/login/wire_link.hpp"

#include <openssl/err.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "pool/failure_diagnosis.hpp"
#include "proxy/wire/backend_parser.hpp"
#include "proxy/wire/byte_io.hpp"
#include "proxy/wire/extended_query.hpp"
#include "proxy/wire/frontend_messages.hpp"

namespace pgvigil::proxy::login {
namespace {

constexpr std::size_t kReadChunk = 16 * 1024;

// Execute ('E') of the unnamed portal, every row: the one frontend message no codec builds.
void append_execute_all(std::string& out) {
  out.push_back('E');
  wire::append_uint32(out, 4 + 1 + 4);
  out.push_back('\0');
  wire::append_uint32(out, 0);
}

// Bind's body after the names: text parameters, text results.
std::string bind_values(const std::vector<std::string>& values) {
  std::string rest;
  wire::append_uint16(rest, 0);  // every parameter in text
  wire::append_uint16(rest, static_cast<std::uint16_t>(values.size()));
  for (const auto& value : values) {
    wire::append_uint32(rest, static_cast<std::uint32_t>(value.size()));
    rest += value;
  }
  wire::append_uint16(rest, 0);  // every result column in text
  return rest;
}

}  // namespace

std::string WireLink::parameter_status(const char* name) const {
  const auto found = parameters_.find(std::string_view(name));
  return found != parameters_.end() ? found->second : "";
}

// --- bytes

WireLink::Io WireLink::write_out() {
  while (out_sent_ < out_.size()) {
    const char* data = out_.data() + out_sent_;
    const std::size_t size = out_.size() - out_sent_;
    if (tls_ != nullptr) {
      std::size_t written = 0;
      ERR_clear_error();
      const int result = SSL_write_ex(tls_, data, size, &written);
      if (result <= 0) {
        const int reason = SSL_get_error(tls_, result);
        if (reason == SSL_ERROR_WANT_WRITE || reason == SSL_ERROR_WANT_READ) {
          return Io::would_block;
        }
        error_ = "could not send data to server: TLS write failed";
        return Io::failed;
      }
      out_sent_ += written;
      continue;
    }
    const ssize_t written = ::send(fd_, data, size, MSG_NOSIGNAL);
    if (written < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return Io::would_block;
      error_ = std::string("could not send data to server: ") + std::strerror(errno);
      return Io::failed;
    }
    out_sent_ += static_cast<std::size_t>(written);
  }
  out_.clear();
  out_sent_ = 0;
  return Io::done;
}

WireLink::Io WireLink::read_in() {
  // Handled bytes go first, so the buffer holds only what is still to read.
  if (in_used_ > 0) {
    in_.erase(0, in_used_);
    in_used_ = 0;
  }
  while (true) {
    const std::size_t before = in_.size();
    in_.resize(before + kReadChunk);
    std::size_t got = 0;
    bool closed = false;
    bool blocked = false;
    if (tls_ != nullptr) {
      ERR_clear_error();
      const int result = SSL_read_ex(tls_, in_.data() + before, kReadChunk, &got);
      if (result <= 0) {
        const int reason = SSL_get_error(tls_, result);
        blocked = reason == SSL_ERROR_WANT_READ || reason == SSL_ERROR_WANT_WRITE;
        closed = reason == SSL_ERROR_ZERO_RETURN || reason == SSL_ERROR_SYSCALL;
        if (!blocked && !closed) error_ = "could not receive data from server: TLS read failed";
      }
    } else {
      const ssize_t result = ::recv(fd_, in_.data() + before, kReadChunk, 0);
      if (result > 0) {
        got = static_cast<std::size_t>(result);
      } else if (result == 0) {
        closed = true;
      } else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        blocked = true;
      } else {
        error_ = std::string("could not receive data from server: ") + std::strerror(errno);
      }
    }
    in_.resize(before + got);
    if (got > 0) continue;
    if (blocked) return Io::done;
    if (closed) {
      error_ = "server closed the connection unexpectedly";
      return Io::closed;
    }
    return Io::failed;
  }
}

bool WireLink::peek_message(char& type, std::span<const char>& payload) {
  const std::span<const char> buffered(in_.data() + in_used_, in_.size() - in_used_);
  const auto decoded = decoder_.decode(buffered);
  if (const auto* frame = std::get_if<wire::Frame>(&decoded)) {
    type = frame->type;
    payload = frame->payload;
    frame_size_ = frame->wire_size;
    return true;
  }
  if (const auto* violation = std::get_if<wire::ProtocolViolation>(&decoded)) {
    error_ = "invalid message from server: " + violation->message();
    stage_ = Stage::broken;
  }
  return false;
}

void WireLink::pop_message() { in_used_ += frame_size_; }

// --- statements

void WireLink::start_statement(bool want_first_row) {
  in_statement_ = true;
  want_first_row_ = want_first_row;
  ready_seen_ = false;
  building_.reset();
  results_.clear();
}

bool WireLink::send_query(const std::string& sql) {
  if (stage_ != Stage::ready) return false;
  start_statement(false);
  wire::append_query(out_, sql);
  return true;
}

bool WireLink::send_query_params(const std::string& sql,
                                 const std::vector<std::string>& parameters) {
  if (stage_ != Stage::ready) return false;
  start_statement(true);
  wire::append_parse(out_, "", sql, std::string(2, '\0'));  // no parameter types: inferred
  wire::append_bind(out_, "", "", bind_values(parameters));
  wire::append_describe(out_, 'P', "");
  append_execute_all(out_);
  wire::append_sync(out_);
  return true;
}

pool::ServerLink::Flush WireLink::flush() {
  if (broken()) return Flush::failed;
  switch (write_out()) {
    case Io::done:
      return Flush::done;
    case Io::would_block:
      return Flush::pending;
    default:
      stage_ = Stage::broken;
      return Flush::failed;
  }
}

bool WireLink::consume_input() {
  if (broken()) return false;
  const Io read = read_in();
  // What arrived is handled even when the server closed after it: its FATAL says why.
  char type = 0;
  std::span<const char> payload;
  while (stage_ != Stage::broken && peek_message(type, payload)) {
    handle_statement_message(type, payload);
    pop_message();
  }
  if (read != Io::done) stage_ = Stage::broken;
  return !broken();
}

void WireLink::handle_statement_message(char type, std::span<const char> payload) {
  using Status = pool::StatementResult::Status;
  switch (type) {
    case 'T':  // RowDescription: a result with rows begins
      building_.emplace();
      building_->status = Status::rows;
      break;
    case 'D':  // DataRow: only the first row's values are kept
      if (building_ && !building_->first_value) {
        const std::uint16_t columns = payload.size() >= 2 ? wire::read_uint16(payload) : 0;
        std::size_t at = 2;
        for (std::uint16_t column = 0; column < columns && at + 4 <= payload.size(); ++column) {
          const auto size = static_cast<std::int32_t>(wire::read_uint32(payload.subspan(at)));
          at += 4;
          std::optional<std::string> value;
          if (size >= 0 && at + static_cast<std::size_t>(size) <= payload.size()) {
            value.emplace(payload.data() + at, static_cast<std::size_t>(size));
            at += static_cast<std::size_t>(size);
          }
          if (column == 0) building_->first_value = value.value_or("");
          if (want_first_row_) building_->first_row.push_back(std::move(value));
        }
      }
      break;
    case 'C':  // CommandComplete
      if (!building_) {
        building_.emplace();
        building_->status = Status::command;
      }
      results_.push_back(std::move(*building_));
      building_.reset();
      break;
    case 'I': {  // EmptyQueryResponse
      pool::StatementResult empty;
      empty.status = Status::empty;
      results_.push_back(std::move(empty));
      break;
    }
    case 'E':
      note_error(payload, in_statement_);
      break;
    case 'N':  // a notice matters only when it announces the server closes
      if (const auto notice = wire::parse_error_response(payload)) note_close_announcement(*notice);
      break;
    case 'Z':
      ready_seen_ = true;
      break;
    case 'S':
      note_parameter(payload);
      break;
    default:  // notices, notifications, ParseComplete, BindComplete and the like
      break;
  }
}

void WireLink::note_error(std::span<const char> payload, bool in_statement) {
  const auto error = wire::parse_error_response(payload);
  if (!error) {
    error_ = "invalid ErrorResponse from server";
    stage_ = Stage::broken;
    return;
  }
  note_close_announcement(*error);
  if (!in_statement) return;
  building_.reset();
  pool::StatementResult result;
  result.status = pool::StatementResult::Status::error;
  result.sqlstate = error->sqlstate.empty() ? "XX000" : std::string(error->sqlstate);
  result.message = pool::one_line(std::string(error->message).c_str());
  results_.push_back(std::move(result));
}

void WireLink::note_close_announcement(const wire::ErrorResponseView& message) {
  if (!pool::announces_close(message.severity, message.sqlstate)) return;
  server_fatal_ = std::string(message.severity) + " " + std::string(message.sqlstate) + ": " +
                  pool::one_line(std::string(message.message).c_str());
}

void WireLink::note_parameter(std::span<const char> payload) {
  if (const auto parameter = wire::parse_parameter_status(payload)) {
    parameters_.insert_or_assign(std::string(parameter->name), std::string(parameter->value));
  }
}

bool WireLink::busy() const {
  if (!open()) return true;
  return in_statement_ && results_.empty() && !ready_seen_;
}

std::optional<pool::StatementResult> WireLink::next_result() {
  if (!results_.empty()) {
    auto result = std::move(results_.front());
    results_.pop_front();
    return result;
  }
  in_statement_ = false;
  return std::nullopt;
}

void WireLink::discard_results() {
  results_.clear();
  if (ready_seen_) in_statement_ = false;
}

void WireLink::finish() {
  if (fd_ >= 0) {
    if (stage_ == Stage::ready) {
      // Terminate, if the socket takes it now: closing must never wait.
      out_.clear();
      out_sent_ = 0;
      wire::append_terminate(out_);
      write_out();
    }
    if (tls_ != nullptr) SSL_free(tls_);
    ::close(fd_);
  }
  if (tls_context_ != nullptr) SSL_CTX_free(tls_context_);
  tls_ = nullptr;
  tls_context_ = nullptr;
  fd_ = -1;
  stage_ = Stage::none;
  server_fatal_.reset();
  parameters_.clear();
  scram_.reset();
  scram_verified_ = false;
  out_.clear();
  out_sent_ = 0;
  in_.clear();
  in_used_ = 0;
  in_statement_ = false;
  ready_seen_ = false;
  building_.reset();
  results_.clear();
}

}  // namespace pgvigil::proxy::login
