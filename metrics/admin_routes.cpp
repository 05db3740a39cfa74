#include "metrics/admin_routes.hpp"

#include <exception>
#include <string_view>

#include <boost/beast/http/field.hpp>
#include <boost/beast/http/verb.hpp>

namespace pgvigil::metrics {
namespace http = boost::beast::http;
namespace {

std::string_view path_of(std::string_view target) {
  return target.substr(0, target.find('?'));
}

HttpResponse readiness(const HttpRequest& request, const ReadyCheck& ready_check) {
  ReadyState state;
  try {
    state = ready_check ? ready_check() : ReadyState{false, "no readiness check configured"};
  } catch (const std::exception& error) {
    // A failing check means "not ready", not a broken admin server.
    state = ReadyState{false, std::string("readiness check failed: ") + error.what()};
  }
  std::string body = state.detail.empty() ? (state.ready ? "ready" : "not ready") : state.detail;
  if (body.back() != '\n') body += '\n';
  return plain_response(state.ready ? http::status::ok : http::status::service_unavailable,
                        std::move(body), request.version(), request.keep_alive());
}

}  // namespace

HttpResponse plain_response(http::status status, std::string body, unsigned version,
                            bool keep_alive) {
  HttpResponse response{status, version};
  response.set(http::field::content_type, "text/plain; charset=utf-8");
  // Health answers must never be served from a cache in between.
  response.set(http::field::cache_control, "no-store");
  response.keep_alive(keep_alive);
  response.body() = std::move(body);
  response.prepare_payload();
  return response;
}

HttpResponse route_admin_request(const HttpRequest& request, const Registry& registry,
                                 const ReadyCheck& ready_check) {
  const unsigned version = request.version();
  const bool keep_alive = request.keep_alive();
  if (request.method() != http::verb::get) {
    auto response =
        plain_response(http::status::method_not_allowed, "method not allowed\n", version,
                       keep_alive);
    response.set(http::field::allow, "GET");
    // A response to HEAD carries headers only; sending the body would desynchronise a
    // keep-alive client, which does not expect one.
    if (request.method() == http::verb::head) response.body().clear();
    return response;
  }
  const std::string_view path = path_of(request.target());
  if (path == "/metrics") {
    auto response = plain_response(http::status::ok, registry.serialize(), version, keep_alive);
    response.set(http::field::content_type, kMetricsContentType);
    return response;
  }
  if (path == "/healthz") {
    // Answering at all proves the process and its event loop run; nothing else is checked.
    return plain_response(http::status::ok, "ok\n", version, keep_alive);
  }
  if (path == "/readyz") return readiness(request, ready_check);
  return plain_response(http::status::not_found, "not found\n", version, keep_alive);
}

}  // namespace pgvigil::metrics
