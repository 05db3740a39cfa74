#include "tests/faults/proxy_client.hpp"

#include <poll.h>

#include <algorithm>
#include <cctype>
#include <regex>

namespace pgvigil::testing {
namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string one_line(const char* text) {
  std::string line = text ? text : "";
  std::replace(line.begin(), line.end(), '\n', ' ');
  while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
  return line;
}

// Waits for fd to become readable (or writable) until deadline; false at the deadline.
bool wait_fd(int fd, bool for_write, Clock::time_point deadline) {
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    pollfd watched{fd, static_cast<short>(for_write ? POLLOUT : POLLIN), 0};
    const int ready = ::poll(&watched, 1, static_cast<int>(left.count()));
    if (ready > 0) return true;
    if (ready == 0) return false;
  }
}

}  // namespace

std::string sqlstate_in_message(const std::string& message) {
  static const std::regex code(R"((FATAL|ERROR|PANIC):  ([0-9A-Z]{5}):)");
  std::smatch match;
  return std::regex_search(message, match, code) ? match[2].str() : "";
}

ProxyClient::ProxyClient(std::uint16_t port, const std::string& dbname, const std::string& user,
                         std::chrono::milliseconds timeout) {
  const auto started = Clock::now();
  const auto deadline = started + timeout;
  const std::string port_text = std::to_string(port);
  const char* keys[] = {"host", "port", "dbname", "user", "sslmode", "gssencmode", nullptr};
  const char* values[] = {"127.0.0.1", port_text.c_str(), dbname.c_str(), user.c_str(),
                          "disable", "disable", nullptr};
  conn_.reset(PQconnectStartParams(keys, values, 0));
  // Verbose errors carry the SQLSTATE: libpq has no other way to report a start-up error's code.
  PQsetErrorVerbosity(conn_.get(), PQERRORS_VERBOSE);
  auto poll = PGRES_POLLING_WRITING;
  while (PQstatus(conn_.get()) != CONNECTION_BAD && poll != PGRES_POLLING_OK &&
         poll != PGRES_POLLING_FAILED) {
    if (!wait_fd(PQsocket(conn_.get()), poll == PGRES_POLLING_WRITING, deadline)) {
      connect_.seconds = since(started);
      connect_.message = "no answer to the start-up within the deadline";
      return;
    }
    poll = PQconnectPoll(conn_.get());
  }
  connect_.finished = true;
  connect_.seconds = since(started);
  connect_.ok = PQstatus(conn_.get()) == CONNECTION_OK;
  if (!connect_.ok) {
    connect_.message = one_line(PQerrorMessage(conn_.get()));
    connect_.sqlstate = sqlstate_in_message(connect_.message);
  } else {
    PQsetnonblocking(conn_.get(), 1);
  }
}

bool ProxyClient::send(const std::string& sql) {
  sent_at_ = Clock::now();
  return connect_.ok && PQsendQuery(conn_.get(), sql.c_str()) == 1;
}

ClientOutcome ProxyClient::query(const std::string& sql, std::chrono::milliseconds timeout) {
  if (!send(sql)) {
    ClientOutcome outcome;
    outcome.finished = true;
    outcome.message = "could not send: " + one_line(PQerrorMessage(conn_.get()));
    return outcome;
  }
  return finish(timeout);
}

ClientOutcome ProxyClient::finish(std::chrono::milliseconds timeout) {
  ClientOutcome outcome;
  const auto deadline = Clock::now() + timeout;
  PGconn* conn = conn_.get();
  while (true) {
    const int flushed = PQflush(conn);
    if (flushed < 0) break;
    if (flushed == 0) break;
    if (!wait_fd(PQsocket(conn), true, deadline)) {
      outcome.seconds = since(sent_at_);
      outcome.message = "could not send within the deadline";
      return outcome;
    }
  }
  while (true) {
    while (PQisBusy(conn) == 0) {
      PGresult* result = PQgetResult(conn);
      if (result == nullptr) {
        outcome.finished = true;
        outcome.seconds = since(sent_at_);
        return outcome;
      }
      const auto status = PQresultStatus(result);
      const bool ok = status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK ||
                      status == PGRES_EMPTY_QUERY;
      // The first error is the proxy's; libpq adds its own ("server closed the connection")
      // without a SQLSTATE when the proxy closes right after it.
      if (!ok && outcome.sqlstate.empty()) {
        const char* code = PQresultErrorField(result, PG_DIAG_SQLSTATE);
        outcome.sqlstate = code ? code : "";
        outcome.message = one_line(PQresultErrorMessage(result));
      }
      outcome.ok = ok && outcome.sqlstate.empty() && outcome.message.empty();
      PQclear(result);
    }
    if (PQstatus(conn) == CONNECTION_BAD) {
      outcome.finished = true;
      outcome.seconds = since(sent_at_);
      if (outcome.message.empty()) outcome.message = one_line(PQerrorMessage(conn));
      return outcome;
    }
    if (!wait_fd(PQsocket(conn), false, deadline)) {
      outcome.seconds = since(sent_at_);
      outcome.message = "no answer within the deadline";
      return outcome;
    }
    if (PQconsumeInput(conn) == 0) {
      // The proxy closed the connection; an ErrorResponse before the close is still read above.
      outcome.message = one_line(PQerrorMessage(conn));
      if (PQisBusy(conn) == 0) continue;
      outcome.finished = true;
      outcome.seconds = since(sent_at_);
      return outcome;
    }
  }
}

}  // namespace pgvigil::testing
