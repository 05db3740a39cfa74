// A request refused before it reached a server: no connection came (the pool's wait ran out,
// the server is down and pool.fail_fast is on). In transaction pooling the client's session
// lives in pgvigil, not on a server, so it can go on: each request in hand gets an ErrorResponse
// and a ReadyForQuery, as a server that refused it would send, and the client may retry. Where
// that cannot be done cleanly the session ends with the error as a FATAL, as before.

#include <spdlog/spdlog.h>

#include "proxy/client_session.hpp"
#include "proxy/wire/backend_messages.hpp"

namespace pgvigil::proxy {

void ClientSession::refuse_request(ClientError error, std::size_t size) {
  std::string answer;
  if (!answer_refused_requests(error, size, answer)) {
    return end_after_io({Ending::failure, std::move(error), std::nullopt});
  }
  if (route_->metrics) route_->metrics->client_error(error.sqlstate);
  spdlog::info("client session for {}: request refused with {} {}{}", route_->settings.database,
               error.sqlstate, error.message, error.detail.empty() ? "" : ": " + error.detail);
  boost::system::error_code ec;
  bool needs_read = false;
  const auto written = stream_.try_write(std::span<const char>(answer), ec, needs_read);
  // Less than a few hundred bytes not taken whole: the client has not read its earlier answers
  // for so long that its socket is full. It gets no more than what it took, and loses the
  // connection, which it would read as a lost server.
  if (ec || written < answer.size()) return end_after_io({Ending::quit, {}, {}});
  enter(Phase::idle, "the request was refused");
  read_client();
}

bool ClientSession::answer_refused_requests(const ClientError& error, std::size_t size,
                                            std::string& answer) {
  // Only a whole request, in transaction pooling, outside a transaction and unpinned, can be
  // refused without leaving the client's session in doubt.
  if (!error.recoverable || !transaction_pooling() || pin_ || tracker_.status() != 'I' ||
      !forwarder_.at_boundary() || size == 0) {
    return false;
  }
  auto scanner = forwarder_.scanner();
  char last = 0;
  bool goodbye = false;
  const auto verdict =
      scanner.scan(client_buffer_.span().first(size), [&](const relay::MessageHeader& header) {
        last = header.type;
        goodbye = goodbye || header.type == 'X';
        // Query, Sync and FunctionCall are each answered with ReadyForQuery; a server that
        // refuses the extended-protocol messages before a Sync skips them up to it.
        if (header.type == 'Q' || header.type == 'S' || header.type == 'F') {
          wire::append_error_response(
              answer, {wire::Severity::error, error.sqlstate, error.message, error.detail,
                       error.hint});
          wire::append_ready_for_query(answer, wire::TransactionStatus::idle);
        }
        return true;
      });
  // A request that ends with a Flush waits for more before its Sync; a Terminate ends anyway.
  return verdict == relay::MessageScanner::Verdict::ok && scanner.at_boundary() && !goodbye &&
         (last == 'Q' || last == 'S' || last == 'F');
}

}  // namespace pgvigil::proxy
