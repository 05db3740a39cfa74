#include "proxy/route.hpp"

namespace pgvigil::proxy {

std::shared_ptr<const SettingMap> intern_settings(Route& route, SettingMap settings) {
  std::erase_if(route.interned_settings, [](const auto& weak) { return weak.expired(); });
  for (const auto& weak : route.interned_settings) {
    if (auto shared = weak.lock(); shared && *shared == settings) return shared;
  }
  auto shared = std::make_shared<const SettingMap>(std::move(settings));
  route.interned_settings.push_back(shared);
  return shared;
}

bool knows_server_parameters(Route& route) {
  // Once known, never empty again: the lock is taken only until then.
  if (!route.server_parameters.empty()) return true;
  if (!route.learnt) return false;
  std::lock_guard lock(route.learnt->mutex);
  route.server_parameters = ServerParameters(route.learnt->parameters);
  return !route.server_parameters.empty();
}

void learn_server_parameters(Route& route,
                             std::vector<std::pair<std::string, std::string>> found) {
  if (route.learnt) {
    std::lock_guard lock(route.learnt->mutex);
    if (route.learnt->parameters.empty()) route.learnt->parameters = found;
  }
  route.server_parameters = ServerParameters(std::move(found));
}

}  // namespace pgvigil::proxy
