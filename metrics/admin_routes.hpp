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

// GET /metrics, /healthz, /readyz; 404 for other paths, 405 for other methods. The query
// string is ignored. Keep-alive and version follow the request.
HttpResponse route_admin_request(const HttpRequest& request, const Registry& registry,
                                 const ReadyCheck& ready_check);

// A minimal plain-text response, for errors found before a request could be routed.
HttpResponse plain_response(boost::beast::http::status status, std::string body,
                            unsigned version, bool keep_alive);

}  // namespace pgvigil::metrics
