#pragma once
// How many cores pgvigil may really run on, for `workers: 0` (one event loop per core).
//
// std::thread::hardware_concurrency counts the machine's CPUs. A sidecar seldom has them all:
// its CPU affinity (taskset, a cpuset cgroup, Kubernetes' static CPU manager) may allow fewer,
// and a CPU quota (a Kubernetes `limits.cpu`, systemd's CPUQuota=, `docker --cpus`) lets it run
// only so many CPUs' worth of time. Event loops beyond that quota do not run in parallel; they
// are throttled, and each one more sleeps and wakes with half the events per wake-up.

#include <filesystem>
#include <string>
#include <string_view>

namespace pgvigil::daemon {

struct AvailableCores {
  int count = 1;        // at least 1
  std::string because;  // what set it, for the start-up log: "2 CPU(s) in the affinity mask"
};

// Counted now. A CPU quota can change under a running process (Kubernetes resizes in place).
AvailableCores available_cores();

// Counted once, at the first call, and the same ever after: the workers started are fixed for
// the process's life, and a reload must resolve pool.shards: 0 to the same number of shards.
const AvailableCores& cores_at_start();

// The CPU quota, in CPUs, of the cgroup a /proc/self/cgroup text names, read from the cgroup
// file system mounted at `cgroup_root` (/sys/fs/cgroup): cgroup v2's cpu.max, or v1's
// cpu.cfs_quota_us / cpu.cfs_period_us. The lowest quota of the cgroup and its ancestors,
// since a parent's quota bounds its children. 0: no quota, or none that could be read.
double cgroup_cpu_quota(std::string_view proc_self_cgroup,
                        const std::filesystem::path& cgroup_root);

}  // namespace pgvigil::daemon
