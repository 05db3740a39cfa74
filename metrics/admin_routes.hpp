#pragma once
// The admin HTTP routes as a pure function of the request: no sockets, so the routing rules
// can be read (and tested) apart from connection handling.

#include <functional>

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include "metrics/ready_state.hpp"
#include "metrics/registry.hpp"

namespace pgvigil::metrics {

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;
using HttpResponse = boost::beast::http::response<boost::beast::http::string_body>;
using ReadyCheck = std::function<ReadyState()>;

inline constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

// What a control request did: its status and a line for the operator.
struct ControlAnswer {
  boost::beast::http::status status = boost::beast::http::status::ok;
  std::string body;
  // Server connections of the database still open (a pause is complete at 0), for scripts:
  // sent as the X-Pgvigil-Open-Connections header.
  int open_connections = 0;
};
// action: "pause" or "resume"; database: as the query string's database= names it.
using ControlHandler =
    std::function<ControlAnswer(std::string_view action, std::string_view database)>;

// Who may change the daemon's state through the endpoint.
struct AdminControl {
  ControlHandler handler;  // empty: the control paths answer 404
  std::string token;       // "" when admin.token_file is not set
  // A loopback endpoint takes control requests without a token: only local processes reach it.
  bool on_loopback = true;
};

// GET /metrics, /healthz, /readyz; POST /pause?database=NAME and /resume?database=NAME, taken
// on a loopback endpoint or with "Authorization: Bearer <token>" (401 or 403 otherwise); 404
// for other paths, 405 for another method. Keep-alive and version follow the request.
HttpResponse route_admin_request(const HttpRequest& request, const Registry& registry,
                                 const ReadyCheck& ready_check, const AdminControl& control = {});

// A minimal plain-text response, for errors found before a request could be routed.
HttpResponse plain_response(boost::beast::http::status status, std::string body,
                            unsigned version, bool keep_alive);

}  // namespace pgvigil::metrics
