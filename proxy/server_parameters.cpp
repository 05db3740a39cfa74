#include "proxy/server_parameters.hpp"

#include "proxy/client_settings.hpp"
#include "proxy/wire/backend_messages.hpp"

namespace pgvigil::proxy {

ServerParameters::ServerParameters(List list) : list_(std::move(list)) {
  // The list is kReportedParameters' (thirteen); a longer one would lose its tail here, which
  // a startup reply could not show anyway.
  if (list_.size() > kMost) list_.resize(kMost);
  for (const auto& [name, value] : list_) {
    wire::append_parameter_status(encoded_, name, value);
    ends_.push_back(encoded_.size());
  }
}

std::size_t ServerParameters::index_of(std::string_view name) const {
  for (std::size_t i = 0; i < list_.size(); ++i) {
    if (setting_names_equal(list_[i].first, name)) return i;
  }
  return npos;
}

}  // namespace pgvigil::proxy
