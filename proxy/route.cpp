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

}  // namespace pgvigil::proxy
