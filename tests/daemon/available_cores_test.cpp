// The cores `workers: 0` counts: cgroup CPU quotas read from file trees laid out as the kernel
// mounts them (v2, v1, hybrid, a container without a cgroup namespace), and the real affinity
// mask of this process.
#include "daemon/available_cores.hpp"

#include <gtest/gtest.h>
#include <sched.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace pgvigil::daemon {
namespace {
namespace fs = std::filesystem;

class CgroupTree : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("pgvigil-cgroup-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  void write(const fs::path& relative, const std::string& text) const {
    fs::create_directories((root_ / relative).parent_path());
    std::ofstream(root_ / relative) << text;
  }
  // A v2 (unified) mount at `mount`, relative to the root.
  void unified_at(const fs::path& mount) const { write(mount / "cgroup.controllers", "cpu io\n"); }

  fs::path root_;
};

TEST_F(CgroupTree, AV2CgroupWithoutAQuotaHasNone) {
  unified_at(".");
  write("system.slice/app.service/cpu.max", "max 100000\n");
  EXPECT_EQ(cgroup_cpu_quota("0::/system.slice/app.service\n", root_), 0);
}

TEST_F(CgroupTree, AV2QuotaIsQuotaOverPeriod) {
  unified_at(".");
  write("kubepods/pod1/sidecar/cpu.max", "150000 100000\n");
  EXPECT_DOUBLE_EQ(cgroup_cpu_quota("0::/kubepods/pod1/sidecar\n", root_), 1.5);
}

TEST_F(CgroupTree, AParentsQuotaBoundsItsChildren) {
  unified_at(".");
  write("kubepods/pod1/cpu.max", "200000 100000\n");
  write("kubepods/pod1/sidecar/cpu.max", "max 100000\n");
  EXPECT_DOUBLE_EQ(cgroup_cpu_quota("0::/kubepods/pod1/sidecar\n", root_), 2.0);
  write("kubepods/pod1/sidecar/cpu.max", "400000 100000\n");
  EXPECT_DOUBLE_EQ(cgroup_cpu_quota("0::/kubepods/pod1/sidecar\n", root_), 2.0);
  write("kubepods/pod1/sidecar/cpu.max", "50000 100000\n");
  EXPECT_DOUBLE_EQ(cgroup_cpu_quota("0::/kubepods/pod1/sidecar\n", root_), 0.5);
}

TEST_F(CgroupTree, InsideACgroupNamespaceTheMountItselfHoldsTheQuota) {
  unified_at(".");
  write("cpu.max", "100000 100000\n");
  EXPECT_DOUBLE_EQ(cgroup_cpu_quota("0::/\n", root_), 1.0);
}

TEST_F(CgroupTree, AV1QuotaIsReadFromTheCpuController) {
  write("cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "50000\n");
  write("cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
  EXPECT_DOUBLE_EQ(cgroup_cpu_quota("5:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n", root_),
                   0.5);
}

TEST_F(CgroupTree, AV1QuotaOfMinusOneIsNone) {
  write("cpu/cpu.cfs_quota_us", "-1\n");
  write("cpu/cpu.cfs_period_us", "100000\n");
  EXPECT_EQ(cgroup_cpu_quota("1:cpu:/\n", root_), 0);
}

TEST_F(CgroupTree, AV1ContainerWithoutACgroupNamespaceFindsItsQuotaAtTheMount) {
  // /proc/self/cgroup names the host's path; the container sees its own cgroup at the mount.
  write("cpu,cpuacct/cpu.cfs_quota_us", "200000\n");
  write("cpu,cpuacct/cpu.cfs_period_us", "100000\n");
  EXPECT_DOUBLE_EQ(cgroup_cpu_quota("3:cpu,cpuacct:/kubepods/burstable/pod9/c1\n", root_), 2.0);
}

TEST_F(CgroupTree, AHybridSystemReadsBothHierarchies) {
  unified_at("unified");
  write("unified/app/cpu.max", "300000 100000\n");
  write("cpu/app/cpu.cfs_quota_us", "-1\n");
  write("cpu/app/cpu.cfs_period_us", "100000\n");
  EXPECT_DOUBLE_EQ(cgroup_cpu_quota("1:cpu:/app\n0::/app\n", root_), 3.0);
}

TEST_F(CgroupTree, AV2OnlySystemIgnoresACgroupNamedUnified) {
  unified_at(".");
  write("unified/cpu.max", "50000 100000\n");  // somebody's cgroup, not a hybrid mount
  write("app/cpu.max", "max 100000\n");
  EXPECT_EQ(cgroup_cpu_quota("0::/app\n", root_), 0);
}

TEST_F(CgroupTree, AHostPathOnlyPartlyUnderTheMountReadsTheMountOnly) {
  // The container's cgroup is the mount; a cgroup of the same name as the host path's first
  // part is another one.
  write("cpu,cpuacct/cpu.cfs_quota_us", "200000\n");
  write("cpu,cpuacct/cpu.cfs_period_us", "100000\n");
  write("cpu,cpuacct/kubepods/cpu.cfs_quota_us", "50000\n");
  write("cpu,cpuacct/kubepods/cpu.cfs_period_us", "100000\n");
  EXPECT_DOUBLE_EQ(cgroup_cpu_quota("3:cpu,cpuacct:/kubepods/pod9/c1\n", root_), 2.0);
}

TEST_F(CgroupTree, APathLeavingTheMountReadsTheMountOnly) {
  unified_at("mount");
  write("mount/cpu.max", "300000 100000\n");
  write("cpu.max", "50000 100000\n");  // outside the mount
  EXPECT_DOUBLE_EQ(cgroup_cpu_quota("0::/../..\n", root_ / "mount"), 3.0);
}

TEST_F(CgroupTree, UnreadableOrMalformedFilesMeanNoQuota) {
  unified_at(".");
  write("a/cpu.max", "lots 100000\n");
  write("b/cpu.max", "100000 0\n");
  EXPECT_EQ(cgroup_cpu_quota("0::/a\n", root_), 0);
  EXPECT_EQ(cgroup_cpu_quota("0::/b\n", root_), 0);
  EXPECT_EQ(cgroup_cpu_quota("0::/not/there\n", root_), 0);
  EXPECT_EQ(cgroup_cpu_quota("garbage without colons\n", root_), 0);
  EXPECT_EQ(cgroup_cpu_quota("", root_), 0);
}

// Restores this thread's affinity mask however the test ends.
class AffinityRestorer {
 public:
  AffinityRestorer() { ::sched_getaffinity(0, sizeof saved_, &saved_); }
  ~AffinityRestorer() { ::sched_setaffinity(0, sizeof saved_, &saved_); }
  AffinityRestorer(const AffinityRestorer&) = delete;
  AffinityRestorer& operator=(const AffinityRestorer&) = delete;
  const cpu_set_t& saved() const { return saved_; }

 private:
  cpu_set_t saved_{};
};

// The lowest CPU of a mask.
int first_cpu(const cpu_set_t& mask) {
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &mask)) return cpu;
  }
  return 0;
}

// The worker count the daemon derives from it (cores_at_start) is counted once per process:
// daemon_setup_pgtest starts the binary on one CPU.
TEST(AvailableCores, AProcessAllowedOneCpuCountsOne) {
  AffinityRestorer restore;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(first_cpu(restore.saved()), &one);
  ASSERT_EQ(::sched_setaffinity(0, sizeof one, &one), 0);

  const AvailableCores cores = available_cores();
  EXPECT_EQ(cores.count, 1);
  EXPECT_EQ(cores.because, "1 CPU(s) in the affinity mask");
}

TEST(AvailableCores, NeverMoreThanTheAffinityMaskAllows) {
  cpu_set_t mask;
  ASSERT_EQ(::sched_getaffinity(0, sizeof mask, &mask), 0);
  const AvailableCores cores = available_cores();
  EXPECT_GE(cores.count, 1);
  EXPECT_LE(cores.count, CPU_COUNT(&mask)) << cores.because;
}

}  // namespace
}  // namespace pgvigil::daemon
