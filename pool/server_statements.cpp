// ServerConnection's own statements: the ping, and what the relay runs between its clients (a
// client's settings, the reset query). They go through libpq, and their results never reach a
// client; every one is bounded by a deadline, and an answer that does not come is blamed on
// what was asked (ping_timeout for a ping, statement_timeout for the others).
#include "pool/server_connection.hpp"

namespace pgvigil::pool {
namespace asio = boost::asio;
using asio::awaitable;

awaitable<std::optional<Death>> ServerConnection::flush(Clock::time_point deadline,
                                                        EvictionReason on_timeout) {
  while (true) {
    const auto result = link_->flush();
    if (result == ServerLink::Flush::done) co_return std::nullopt;
    if (result == ServerLink::Flush::failed) {
      track_socket();
      co_return diagnose_failure(true, "sending to server");
    }
    if (co_await wait_ready(Ready::write, deadline) != WaitResult::ready) {
      co_return Death{on_timeout, "could not send in time", last_alive_};
    }
  }
}

template <typename OnResult>
awaitable<std::optional<Death>> ServerConnection::run_statement(
    const std::string& sql, Clock::time_point deadline, EvictionReason on_timeout,
    OnResult on_result, const std::vector<std::string>* parameters) {
  const auto started = Clock::now();
  const bool sent =
      parameters == nullptr ? link_->send_query(sql) : link_->send_query_params(sql, *parameters);
  if (!sent) {
    track_socket();
    co_return diagnose_failure(false, "sending");
  }
  if (auto death = co_await flush(deadline, on_timeout)) co_return death;
  while (true) {
    const auto result = co_await wait_ready(Ready::read, deadline);
    if (result == WaitResult::timed_out) {
      const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - started);
      co_return Death{on_timeout, "no answer within " + std::to_string(waited.count()) + " ms",
                      last_alive_};
    }
    if (result == WaitResult::aborted) {
      // The connection was detached or closed under the statement: pgvigil is stopping.
      co_return Death{EvictionReason::shutdown, "interrupted", last_alive_};
    }
    const bool read = link_->consume_input();
    track_socket();
    if (!read) co_return diagnose_failure(true, "reading the answer");
    mark_alive();
    // Every result up to ReadyForQuery (nullopt) is read, so libpq and the server are at a
    // message boundary afterwards.
    while (!link_->busy()) {
      const auto next = link_->next_result();
      if (!next) {
        // A promoted standby reports in_hot_standby off before the ReadyForQuery of the first
        // statement after the promotion: a ping finds it on an idle connection.
        note_hot_standby_report(link_->parameter_status("in_hot_standby"));
        co_return std::nullopt;
      }
      if (link_->broken()) {
        track_socket();
        co_return diagnose_failure(true, "statement");
      }
      if (auto death = on_result(*next)) co_return death;
    }
  }
}

awaitable<std::variant<Clock::duration, Death>> ServerConnection::ping(const std::string& query,
                                                                       Clock::time_point deadline) {
  const auto started = Clock::now();
  // The first failure of the ping is kept; the rest of its results are still drained.
  std::optional<Death> failure;
  const auto judge = [&failure](const StatementResult& result) -> std::optional<Death> {
    if (failure) return std::nullopt;
    if (result.status == StatementResult::Status::rows && result.first_value) {
      // A ping query whose first value is false (SELECT NOT pg_is_in_recovery() on a demoted
      // primary) says the server works but is not what we want.
      if (*result.first_value == "f" || *result.first_value == "false") {
        failure = Death{EvictionReason::ping_failed, "ping query returned false", Clock::now()};
      }
    } else if (result.status == StatementResult::Status::error) {
      failure =
          Death{EvictionReason::ping_failed,
                "ping answered with " + result.sqlstate + ": " + result.message, Clock::now()};
    }
    return std::nullopt;
  };
  if (auto death = co_await run_statement(query, deadline, EvictionReason::ping_timeout, judge)) {
    co_return *death;
  }
  if (failure) co_return *failure;
  co_return Clock::now() - started;
}

awaitable<std::optional<ServerConnection::StatementError>> ServerConnection::execute(
    const std::string& sql, Clock::time_point deadline) {
  auto answer = co_await query_value(sql, deadline);
  co_return std::move(answer.error);
}

awaitable<ServerConnection::Answer> ServerConnection::query_value(const std::string& sql,
                                                                  Clock::time_point deadline) {
  Answer answer;
  const auto record = [&answer](const StatementResult& result) -> std::optional<Death> {
    if (!answer.error && result.status == StatementResult::Status::error) {
      answer.error = StatementError{result.sqlstate, result.message, std::nullopt};
    } else if (!answer.value && result.status == StatementResult::Status::rows) {
      answer.value = result.first_value;
    }
    return std::nullopt;
  };
  if (auto death =
          co_await run_statement(sql, deadline, EvictionReason::statement_timeout, record)) {
    answer.error = StatementError{"08006", death->detail, *death};
  }
  co_return answer;
}

awaitable<ServerConnection::RowAnswer> ServerConnection::query_row(
    const std::string& sql, const std::vector<std::string>& parameters,
    Clock::time_point deadline) {
  RowAnswer answer;
  const auto record = [&answer](const StatementResult& result) -> std::optional<Death> {
    if (!answer.error && result.status == StatementResult::Status::error) {
      answer.error = StatementError{result.sqlstate, result.message, std::nullopt};
    } else if (!answer.row && result.status == StatementResult::Status::rows &&
               !result.first_row.empty()) {
      answer.row = result.first_row;
    }
    return std::nullopt;
  };
  if (auto death = co_await run_statement(sql, deadline, EvictionReason::statement_timeout,
                                          record, &parameters)) {
    answer.error = StatementError{"08006", death->detail, *death};
  }
  co_return answer;
}

}  // namespace pgvigil::pool
