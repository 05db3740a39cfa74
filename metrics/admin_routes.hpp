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
  bool paused = false;  // the database's state after the request: X-Pgvigil-Paused, 1 or 0
};
// action: "pause", "resume", or "status" (GET, which changes nothing); database: as the query
// string's database= names it.
using ControlHandler =
    std::function<ControlAnswer(std::string_view action, std::string_view database)>;

// Who may change the daemon's state through the endpoint.
struct AdminControl {
  ControlHandler handler;  // empty: the control paths answer 404
  std::string token;       // "" when admin.token_file is not set
  // Without a token, only a loopback endpoint takes control requests: only local processes
  // reach it.
  bool on_loopback = true;
};

// GET /metrics, /healthz, /readyz; POST /pause?database=NAME and /resume?database=NAME, taken
// with "Authorization: Bearer <token>" when admin.token_file is set, else on a loopback endpoint
// only, and never with an Origin header (401 or 403 otherwise); GET on those paths reads the
// state. 404 for other paths, 405 for another method. Keep-alive and version follow the request.
HttpResponse route_admin_request(const HttpRequest& request, const Registry& registry,
                                 const ReadyCheck& ready_check, const AdminControl& control = {});

// A minimal plain-text response, for errors found before a request could be routed.
HttpResponse plain_response(boost::beast::http::status status, std::string body,
                            unsigned version, bool keep_alive);

}  // namespace pgvigil::metrics
