#include "pool/server_role.hpp"

#include <algorithm>
#include <charconv>

namespace pgvigil::pool {

std::string_view to_string(ServerRole role) {
  switch (role) {
    case ServerRole::primary: return "primary";
    case ServerRole::standby: return "standby";
    case ServerRole::unknown: break;
  }
  return "unknown";
}

std::optional<ServerRole> role_from_hot_standby(std::string_view in_hot_standby) {
  if (in_hot_standby == "on") return ServerRole::standby;
  if (in_hot_standby == "off") return ServerRole::primary;
  return std::nullopt;
}

std::optional<RoleReport> role_from_parameters(std::string_view in_hot_standby,
                                               std::string_view default_transaction_read_only) {
  const auto role = role_from_hot_standby(in_hot_standby);
  if (!role) return std::nullopt;
  RoleReport report;
  report.role = *role;
  report.read_only = report.role == ServerRole::standby || default_transaction_read_only == "on";
  return report;
}

std::optional<RoleReport> role_from_query_value(std::string_view value) {
  const auto comma = value.find(',');
  if (comma == std::string_view::npos) return std::nullopt;
  const auto recovery = value.substr(0, comma);
  const auto read_only = value.substr(comma + 1);
  if ((recovery != "true" && recovery != "false") || (read_only != "on" && read_only != "off")) {
    return std::nullopt;
  }
  RoleReport report;
  report.role = recovery == "true" ? ServerRole::standby : ServerRole::primary;
  report.read_only = report.role == ServerRole::standby || read_only == "on";
  return report;
}

std::optional<double> lag_from_query_value(std::string_view value) {
  double seconds = 0;
  const auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), seconds);
  if (error != std::errc() || end != value.data() + value.size()) return std::nullopt;
  // The standby's clock may run behind the primary's: a replay "from the future" is no lag.
  return std::max(seconds, 0.0);
}

bool role_matches(TargetSessionAttrs target, const RoleReport& report, bool standby_pass) {
  switch (target) {
    case TargetSessionAttrs::any: return true;
    case TargetSessionAttrs::read_write:
      return report.role != ServerRole::unknown && !report.read_only;
    case TargetSessionAttrs::read_only:
      return report.role != ServerRole::unknown && report.read_only;
    case TargetSessionAttrs::primary: return report.role == ServerRole::primary;
    case TargetSessionAttrs::standby: return report.role == ServerRole::standby;
    case TargetSessionAttrs::prefer_standby:
      return !standby_pass || report.role == ServerRole::standby;
  }
  return false;
}

}  // namespace pgvigil::pool
