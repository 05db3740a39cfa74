#include "metrics/admin_routes.hpp"

#include <exception>
#include <optional>
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

// The value of `name` in the target's query string, as written (no percent-decoding: database
// names are matched as configured); nullopt when absent.
std::optional<std::string_view> query_parameter(std::string_view target, std::string_view name) {
  const auto mark = target.find('?');
  if (mark == std::string_view::npos) return std::nullopt;
  auto query = target.substr(mark + 1);
  while (!query.empty()) {
    const auto end = query.find('&');
    const auto pair = query.substr(0, end);
    const auto equals = pair.find('=');
    if (pair.substr(0, equals) == name) {
      return equals == std::string_view::npos ? std::string_view() : pair.substr(equals + 1);
    }
    if (end == std::string_view::npos) break;
    query.remove_prefix(end + 1);
  }
  return std::nullopt;
}

// Compares in time that depends on the lengths only, so a wrong token's timing tells nothing
// about how much of it was right.
bool same_secret(std::string_view given, std::string_view expected) {
  if (given.size() != expected.size()) return false;
  unsigned char difference = 0;
  for (std::size_t i = 0; i < given.size(); ++i) {
    difference |= static_cast<unsigned char>(given[i] ^ expected[i]);
  }
  return difference == 0;
}

// Why a control request is refused, or nullopt when it may run.
std::optional<HttpResponse> refusal(const HttpRequest& request, const AdminControl& control) {
  const auto version = request.version();
  const auto keep_alive = request.keep_alive();
  // A web page may make a browser send a bodiless POST anywhere, loopback included; a browser
  // says where the page came from, and no operator's tool does.
  if (request.find(http::field::origin) != request.end()) {
    return plain_response(http::status::forbidden,
                          "control requests from a web page (Origin header) are refused\n",
                          version, keep_alive);
  }
  const auto authorization = request[http::field::authorization];
  if (!authorization.empty() || !control.token.empty()) {
    constexpr std::string_view kBearer = "Bearer ";
    const std::string_view given(authorization.data(), authorization.size());
    if (!control.token.empty() && given.starts_with(kBearer) &&
        same_secret(given.substr(kBearer.size()), control.token)) {
      return std::nullopt;
    }
    // With a token configured it is required everywhere, loopback included.
    auto response = plain_response(
        http::status::unauthorized,
        authorization.empty() ? "a bearer token is required (admin.token_file)\n"
                              : "the bearer token does not match admin.token_file\n",
        version, keep_alive);
    response.set(http::field::www_authenticate, "Bearer");
    return response;
  }
  if (control.on_loopback) return std::nullopt;
  return plain_response(http::status::forbidden,
                        "control requests are taken on a loopback admin.listen only, unless "
                        "admin.token_file is set\n",
                        version, keep_alive);
}

HttpResponse control_request(const HttpRequest& request, std::string_view action,
                             const AdminControl& control) {
  const auto version = request.version();
  const auto keep_alive = request.keep_alive();
  // GET reads the state (for a caller waiting for a pause to complete) and changes nothing.
  const bool reading = request.method() == http::verb::get;
  if (request.method() != http::verb::post && !reading) {
    auto response = plain_response(http::status::method_not_allowed, "method not allowed\n",
                                   version, keep_alive);
    response.set(http::field::allow, "GET, POST");
    if (request.method() == http::verb::head) response.body().clear();
    return response;
  }
  if (!reading) {
    if (auto refused = refusal(request, control)) return std::move(*refused);
  }
  const auto database = query_parameter(request.target(), "database");
  if (!database || database->empty()) {
    return plain_response(http::status::bad_request,
                          "name the database: /" + std::string(action) + "?database=NAME\n",
                          version, keep_alive);
  }
  ControlAnswer answer;
  try {
    answer = control.handler(reading ? "status" : action, *database);
  } catch (const std::exception& error) {
    answer = {http::status::internal_server_error, std::string(action) + " failed: " + error.what()};
  }
  if (answer.body.empty() || answer.body.back() != '\n') answer.body += '\n';
  auto response = plain_response(answer.status, std::move(answer.body), version, keep_alive);
  response.set("X-Pgvigil-Open-Connections", std::to_string(answer.open_connections));
  response.set("X-Pgvigil-Paused", answer.paused ? "1" : "0");
  return response;
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
                                 const ReadyCheck& ready_check, const AdminControl& control) {
  const unsigned version = request.version();
  const bool keep_alive = request.keep_alive();
  const std::string_view path = path_of(request.target());
  if (control.handler && (path == "/pause" || path == "/resume")) {
    return control_request(request, path.substr(1), control);
  }
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
