#include "pool/libpq_link.hpp"

#include <memory>
#include <string_view>
#include <vector>

#include "pool/failure_diagnosis.hpp"

namespace pgvigil::pool {

std::string one_line(const char* text) {
  std::string line = text ? text : "";
  while (!line.empty() && (line.back() == '\n' || line.back() == ' ')) line.pop_back();
  for (auto& c : line) {
    if (c == '\n') c = ' ';
  }
  return line;
}

bool LibpqLink::start_connect(const ConnectionParameters& parameters) {
  finish();
  std::vector<const char*> keys;
  std::vector<const char*> values;
  for (const auto& [key, value] : parameters) {
    keys.push_back(key.c_str());
    values.push_back(value.c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  conn_ = PQconnectStartParams(keys.data(), values.data(), 0);
  return conn_ != nullptr && PQstatus(conn_) != CONNECTION_BAD;
}

LibpqLink::Poll LibpqLink::poll_connect() {
  switch (PQconnectPoll(conn_)) {
    case PGRES_POLLING_READING:
      return Poll::read;
    case PGRES_POLLING_WRITING:
      return Poll::write;
    case PGRES_POLLING_OK:
      return Poll::ok;
    default:
      return Poll::failed;
  }
}

bool LibpqLink::finish_connect() {
  if (PQsetnonblocking(conn_, 1) != 0) return false;
  PQsetNoticeReceiver(conn_, &LibpqLink::on_notice, this);
  tls_ = static_cast<SSL*>(PQsslStruct(conn_, "OpenSSL"));
  return true;
}

int LibpqLink::backend_pid() const { return conn_ ? PQbackendPID(conn_) : 0; }

std::string LibpqLink::parameter_status(const char* name) const {
  const char* value = conn_ ? PQparameterStatus(conn_, name) : nullptr;
  return value ? value : "";
}

CancelOrder LibpqLink::cancel_order() const {
  if (conn_ == nullptr) return {};
  std::shared_ptr<PGcancel> handle(PQgetCancel(conn_), &PQfreeCancel);
  if (!handle) return {};
  return [handle](std::string& error) {
    char text[256] = {};
    if (PQcancel(handle.get(), text, sizeof text) != 0) return true;
    error = one_line(text);
    return false;
  };
}

std::string LibpqLink::error_message() const {
  return conn_ ? one_line(PQerrorMessage(conn_)) : "out of memory";
}

void LibpqLink::on_notice(void* self, const PGresult* result) {
  // An ERROR or FATAL on an idle connection reaches libpq's notice path, as do warnings; one that
  // announces the server is about to close (announces_close) is kept as the reason.
  const char* severity = PQresultErrorField(result, PG_DIAG_SEVERITY_NONLOCALIZED);
  if (severity == nullptr) return;
  const char* code = PQresultErrorField(result, PG_DIAG_SQLSTATE);
  if (!announces_close(severity, code ? code : "")) return;
  const char* message = PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY);
  static_cast<LibpqLink*>(self)->server_fatal_ =
      std::string(severity) + " " + (code ? code : "") + ": " + (message ? message : "");
}

bool LibpqLink::send_query(const std::string& sql) {
  want_first_row_ = false;
  return conn_ != nullptr && PQsendQuery(conn_, sql.c_str()) != 0;
}

bool LibpqLink::send_query_params(const std::string& sql,
                                  const std::vector<std::string>& parameters) {
  if (conn_ == nullptr) return false;
  want_first_row_ = true;
  std::vector<const char*> values;
  values.reserve(parameters.size());
  for (const auto& parameter : parameters) values.push_back(parameter.c_str());
  return PQsendQueryParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr,
                           values.data(), nullptr, nullptr, 0) != 0;
}

LibpqLink::Flush LibpqLink::flush() {
  if (conn_ == nullptr) return Flush::failed;
  const int result = PQflush(conn_);
  return result == 0 ? Flush::done : result > 0 ? Flush::pending : Flush::failed;
}

bool LibpqLink::consume_input() {
  return conn_ != nullptr && PQconsumeInput(conn_) != 0 && PQstatus(conn_) != CONNECTION_BAD;
}

std::optional<StatementResult> LibpqLink::next_result() {
  std::unique_ptr<PGresult, decltype(&PQclear)> result(PQgetResult(conn_), &PQclear);
  if (!result) return std::nullopt;
  StatementResult out;
  switch (PQresultStatus(result.get())) {
    case PGRES_TUPLES_OK:
      out.status = StatementResult::Status::rows;
      if (PQntuples(result.get()) > 0 && PQnfields(result.get()) > 0) {
        out.first_value = PQgetvalue(result.get(), 0, 0);
        for (int column = 0; want_first_row_ && column < PQnfields(result.get()); ++column) {
          if (PQgetisnull(result.get(), 0, column)) {
            out.first_row.emplace_back(std::nullopt);
          } else {
            out.first_row.emplace_back(PQgetvalue(result.get(), 0, column));
          }
        }
      }
      break;
    case PGRES_COMMAND_OK:
      out.status = StatementResult::Status::command;
      break;
    case PGRES_EMPTY_QUERY:
      out.status = StatementResult::Status::empty;
      break;
    case PGRES_FATAL_ERROR: {
      out.status = StatementResult::Status::error;
      const char* code = PQresultErrorField(result.get(), PG_DIAG_SQLSTATE);
      const char* message = PQresultErrorField(result.get(), PG_DIAG_MESSAGE_PRIMARY);
      out.sqlstate = code ? code : "XX000";
      out.message = message ? one_line(message) : one_line(PQresultErrorMessage(result.get()));
      break;
    }
    default:
      out.status = StatementResult::Status::other;
      break;
  }
  return out;
}

void LibpqLink::discard_results() {
  while (conn_ != nullptr && PQisBusy(conn_) == 0) {
    PGresult* stray = PQgetResult(conn_);
    if (stray == nullptr) break;
    PQclear(stray);
  }
}

void LibpqLink::finish() {
  tls_ = nullptr;
  server_fatal_.reset();
  if (conn_ != nullptr) {
    PQfinish(conn_);
    conn_ = nullptr;
  }
}

}  // namespace pgvigil::pool
