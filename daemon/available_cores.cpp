#include "daemon/available_cores.hpp"

#include <sched.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

namespace pgvigil::daemon {
namespace {
namespace fs = std::filesystem;

std::optional<std::string> read_small_file(const fs::path& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// cgroup v2: "max 100000" (no quota) or "150000 100000" (1.5 CPUs).
std::optional<double> quota_v2(const fs::path& directory) {
  const auto text = read_small_file(directory / "cpu.max");
  if (!text) return std::nullopt;
  std::istringstream fields(*text);
  std::string quota;
  double period = 0;
  if (!(fields >> quota >> period) || quota == "max" || period <= 0) return std::nullopt;
  try {
    const double cores = std::stod(quota) / period;
    return cores > 0 ? std::optional<double>(cores) : std::nullopt;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// cgroup v1: cpu.cfs_quota_us is -1 without a quota.
std::optional<double> quota_v1(const fs::path& directory) {
  const auto quota_text = read_small_file(directory / "cpu.cfs_quota_us");
  const auto period_text = read_small_file(directory / "cpu.cfs_period_us");
  if (!quota_text || !period_text) return std::nullopt;
  double quota = 0;
  double period = 0;
  if (!(std::istringstream(*quota_text) >> quota) ||
      !(std::istringstream(*period_text) >> period) || quota <= 0 || period <= 0) {
    return std::nullopt;
  }
  return quota / period;
}

// The lower of two quotas, 0 standing for none.
double lower_quota(double a, double b) { return a == 0 ? b : b == 0 ? a : std::min(a, b); }

// The lowest quota of the cgroup at `path` under the mount `top` and of its ancestors up to
// `top`. When `path` is not there (a container with cgroup v1 and no cgroup namespace, where
// /proc/self/cgroup names the host's path but the container's own cgroup is mounted at `top`),
// or would leave `top` (".."), only `top` itself is read.
template <typename ReadQuota>
double lowest_quota_up_to(const fs::path& top, const fs::path& path, ReadQuota read_quota) {
  const fs::path relative = path.lexically_normal();
  std::error_code error;
  fs::path at = top / relative;
  if (relative.empty() || *relative.begin() == ".." || !fs::is_directory(at, error)) at = top;
  double lowest = 0;
  for (;; at = at.parent_path()) {
    if (const auto quota = read_quota(at)) lowest = lower_quota(lowest, *quota);
    if (at.native().size() <= top.native().size()) break;
  }
  return lowest;
}

}  // namespace

double cgroup_cpu_quota(std::string_view proc_self_cgroup, const fs::path& cgroup_root) {
  double lowest = 0;
  std::error_code error;  // a file system error (a sandbox's denial) is no quota, not a failure
  std::istringstream lines{std::string(proc_self_cgroup)};
  for (std::string line; std::getline(lines, line);) {
    // "hierarchy-id:controller,list:/path"; the unified hierarchy (v2) is "0::/path".
    const auto first = line.find(':');
    const auto second = first == std::string::npos ? first : line.find(':', first + 1);
    if (second == std::string::npos) continue;
    const std::string controllers = line.substr(first + 1, second - first - 1);
    const fs::path path = fs::path(line.substr(second + 1)).relative_path();
    if (controllers.empty()) {
      // The unified mount is cgroup_root itself on a v2-only system, cgroup_root/unified on a
      // hybrid one (where cgroup_root has no cgroup.controllers).
      for (const fs::path& mount : {cgroup_root, cgroup_root / "unified"}) {
        if (fs::exists(mount / "cgroup.controllers", error)) {
          lowest = lower_quota(lowest, lowest_quota_up_to(mount, path, quota_v2));
          break;
        }
      }
      continue;
    }
    std::vector<std::string> names;
    std::istringstream list(controllers);
    for (std::string name; std::getline(list, name, ',');) names.push_back(name);
    if (std::find(names.begin(), names.end(), "cpu") == names.end()) continue;
    // v1 mounts the cpu controller as "cpu,cpuacct" (with a "cpu" link) or as "cpu" alone.
    for (const fs::path& mount : {cgroup_root / controllers, cgroup_root / "cpu"}) {
      if (fs::is_directory(mount, error)) {
        lowest = lower_quota(lowest, lowest_quota_up_to(mount, path, quota_v1));
        break;
      }
    }
  }
  return lowest;
}

AvailableCores available_cores() {
  AvailableCores cores;
  // Sized for the machine: a fixed cpu_set_t holds 1024 CPUs, and sched_getaffinity fails on a
  // machine with more.
  const int possible = std::max(1024, static_cast<int>(std::thread::hardware_concurrency()));
  cpu_set_t* mask = CPU_ALLOC(possible);
  const std::size_t mask_size = CPU_ALLOC_SIZE(possible);
  if (mask != nullptr && sched_getaffinity(0, mask_size, mask) == 0) {
    cores.count = CPU_COUNT_S(mask_size, mask);
    cores.because = std::to_string(cores.count) + " CPU(s) in the affinity mask";
  } else {
    cores.count = static_cast<int>(std::thread::hardware_concurrency());
    cores.because = std::to_string(cores.count) + " CPU(s) on the machine";
  }
  if (mask != nullptr) CPU_FREE(mask);
  const double quota =
      cgroup_cpu_quota(read_small_file("/proc/self/cgroup").value_or(""), "/sys/fs/cgroup");
  // A quota of 1.5 CPUs still runs two threads at once half of the time: rounded up.
  if (quota > 0 && std::ceil(quota) < cores.count) {
    cores.count = static_cast<int>(std::ceil(quota));
    char text[64];
    std::snprintf(text, sizeof text, "a cgroup CPU quota of %.2f CPU(s)", quota);
    cores.because = text;
  }
  cores.count = std::max(1, cores.count);
  return cores;
}

const AvailableCores& cores_at_start() {
  static const AvailableCores cores = available_cores();
  return cores;
}

}  // namespace pgvigil::daemon
