#include "proxy/wire/backend_parser.hpp"

#include "proxy/wire/byte_io.hpp"

namespace pgvigil::proxy::wire {

std::optional<TransactionStatus> parse_ready_for_query(std::span<const char> payload) {
  if (payload.size() != 1) return std::nullopt;
  switch (payload[0]) {
    case 'I':
      return TransactionStatus::idle;
    case 'T':
      return TransactionStatus::in_transaction;
    case 'E':
      return TransactionStatus::failed;
    default:
      return std::nullopt;
  }
}

std::optional<ErrorResponseView> parse_error_response(std::span<const char> payload) {
  const std::string_view body(payload.data(), payload.size());
  ErrorResponseView view;
  std::string_view localised_severity;
  std::size_t pos = 0;
  while (true) {
    if (pos >= body.size()) return std::nullopt;  // the list's terminator is missing
    const char code = body[pos++];
    if (code == '\0') break;
    const std::size_t end = body.find('\0', pos);
    if (end == std::string_view::npos) return std::nullopt;
    const std::string_view value = body.substr(pos, end - pos);
    pos = end + 1;
    switch (code) {
      case 'S':
        localised_severity = value;
        break;
      case 'V':
        view.severity = value;
        break;
      case 'C':
        view.sqlstate = value;
        break;
      case 'M':
        view.message = value;
        break;
      case 'D':
        view.detail = value;
        break;
      case 'H':
        view.hint = value;
        break;
      default:
        break;
    }
  }
  if (pos != body.size()) return std::nullopt;
  if (view.severity.empty()) view.severity = localised_severity;  // servers before 9.6 lack 'V'
  return view;
}

std::optional<ParameterStatusView> parse_parameter_status(std::span<const char> payload) {
  const std::string_view body(payload.data(), payload.size());
  const std::size_t name_end = body.find('\0');
  if (name_end == std::string_view::npos) return std::nullopt;
  const std::size_t value_end = body.find('\0', name_end + 1);
  if (value_end == std::string_view::npos || value_end + 1 != body.size()) return std::nullopt;
  return ParameterStatusView{body.substr(0, name_end),
                             body.substr(name_end + 1, value_end - name_end - 1)};
}

std::optional<BackendKeyData> parse_backend_key_data(std::span<const char> payload) {
  if (payload.size() != 8) return std::nullopt;
  return BackendKeyData{read_uint32(payload), read_uint32(payload.subspan(4))};
}

}  // namespace pgvigil::proxy::wire
