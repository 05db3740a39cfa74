#include "proxy/proxy_service.hpp"

namespace pgvigil::proxy {

ProxyService::ProxyService(ProxySettings settings, std::vector<Route> routes,
                           std::shared_ptr<const auth::UsersFile> users)
    : settings_(std::move(settings)), routes_(std::move(routes)), users_(std::move(users)) {}

ProxyService::~ProxyService() { blocking_.join(); }

Route* ProxyService::find_route(const std::string& database) {
  for (auto& route : routes_) {
    if (route.settings.database == database) return &route;
  }
  return nullptr;
}

std::string ProxyService::route_names() const {
  std::string names;
  for (const auto& route : routes_) {
    if (!names.empty()) names += ", ";
    names += route.settings.database;
  }
  return names;
}

bool ProxyService::admit_client() {
  if (clients_.fetch_add(1, std::memory_order_relaxed) >= settings_.max_client_connections) {
    clients_.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  return true;
}

}  // namespace pgvigil::proxy
