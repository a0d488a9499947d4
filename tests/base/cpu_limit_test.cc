// The cgroup CPU limit that caps --workers auto: cgroup v1 and v2 as the
// kernel writes them, a Kubernetes pod's nesting, containers with their own
// cgroup namespace, and what is not a limit.
#include "base/cpu_limit.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace shadowtap::base {
namespace {

// A Debian 12 host with cgroup v2 only.
constexpr const char* kV2Mountinfo =
    "22 1 259:1 / / rw,relatime shared:1 - ext4 /dev/root rw\n"
    "26 22 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate\n";

// A hybrid host (this project's CI machines): cpu on v1, the unified
// hierarchy without controllers.
constexpr const char* kHybridMountinfo =
    "30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "40 30 0:37 / /sys/fs/cgroup/unified rw,relatime shared:5 - cgroup2 cgroup2 rw\n"
    "33 30 0:30 / /sys/fs/cgroup/cpuset rw,relatime shared:6 - cgroup cgroup rw,cpuset\n"
    "31 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:7 - cgroup cgroup rw,cpu,cpuacct\n";

struct FakeFs {
  std::map<std::string, std::string> files;
  std::optional<double> limit() const {
    return cpuLimitCores([this](const std::string& path) -> std::optional<std::string> {
      const auto it = files.find(path);
      return it == files.end() ? std::nullopt : std::optional<std::string>(it->second);
    });
  }
};

TEST(CpuLimit, CpuMaxIsQuotaOverPeriod) {
  EXPECT_EQ(parseCpuMax("100000 100000\n"), 1.0);
  EXPECT_EQ(parseCpuMax("150000 100000"), 1.5);
  EXPECT_EQ(parseCpuMax("50000 100000\n"), 0.5);
  EXPECT_EQ(parseCpuMax("max 100000\n"), std::nullopt) << "unlimited";
  EXPECT_EQ(parseCpuMax(""), std::nullopt);
  EXPECT_EQ(parseCpuMax("0 100000"), std::nullopt);
  EXPECT_EQ(parseCpuMax("100000 0"), std::nullopt);
  EXPECT_EQ(parseCpuMax("12x 100000"), std::nullopt);
  EXPECT_EQ(parseCpuMax("1 2 3"), std::nullopt);
}

TEST(CpuLimit, CfsQuotaMinusOneIsNoLimit) {
  EXPECT_EQ(parseCfsQuota("200000\n", "100000\n"), 2.0);
  EXPECT_EQ(parseCfsQuota("-1\n", "100000\n"), std::nullopt);
  EXPECT_EQ(parseCfsQuota("", "100000"), std::nullopt);
}

TEST(CpuLimit, V2PodNestingTakesTheSmallestLimitUpToTheRoot) {
  FakeFs fs;
  fs.files["/proc/self/mountinfo"] = kV2Mountinfo;
  fs.files["/proc/self/cgroup"] = "0::/kubepods.slice/pod1.slice/cri-abc.scope\n";
  fs.files["/sys/fs/cgroup/kubepods.slice/cpu.max"] = "max 100000\n";
  fs.files["/sys/fs/cgroup/kubepods.slice/pod1.slice/cpu.max"] = "100000 100000\n";
  fs.files["/sys/fs/cgroup/kubepods.slice/pod1.slice/cri-abc.scope/cpu.max"] = "max 100000\n";
  EXPECT_EQ(fs.limit(), 1.0) << "the pod's limit binds the container without one";
  fs.files["/sys/fs/cgroup/kubepods.slice/pod1.slice/cri-abc.scope/cpu.max"] = "50000 100000\n";
  EXPECT_EQ(fs.limit(), 0.5);
}

TEST(CpuLimit, V2NoLimitAnywhereIsNone) {
  FakeFs fs;
  fs.files["/proc/self/mountinfo"] = kV2Mountinfo;
  fs.files["/proc/self/cgroup"] = "0::/system.slice/shadowtap.service\n";
  fs.files["/sys/fs/cgroup/system.slice/cpu.max"] = "max 100000\n";
  fs.files["/sys/fs/cgroup/system.slice/shadowtap.service/cpu.max"] = "max 100000\n";
  EXPECT_EQ(fs.limit(), std::nullopt);
}

TEST(CpuLimit, V2ContainerWithItsOwnCgroupNamespaceReadsTheMountItself) {
  // Inside the container the path is "/", and /sys/fs/cgroup is its cgroup.
  FakeFs fs;
  fs.files["/proc/self/mountinfo"] =
      "700 600 0:23 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw\n";
  fs.files["/proc/self/cgroup"] = "0::/\n";
  fs.files["/sys/fs/cgroup/cpu.max"] = "200000 100000\n";
  EXPECT_EQ(fs.limit(), 2.0);
}

TEST(CpuLimit, V2BindMountOfPartOfTheTree) {
  // The mount's root is the container's cgroup; the process is in a child of it.
  FakeFs fs;
  fs.files["/proc/self/mountinfo"] = "700 600 0:23 /kubepods/pod1/c1 /sys/fs/cgroup ro - cgroup2 cgroup2 rw\n";
  fs.files["/proc/self/cgroup"] = "0::/kubepods/pod1/c1/agent\n";
  fs.files["/sys/fs/cgroup/agent/cpu.max"] = "max 100000\n";
  fs.files["/sys/fs/cgroup/cpu.max"] = "300000 100000\n";
  EXPECT_EQ(fs.limit(), 3.0);
  const auto where = cpuLimitDirs(fs.files["/proc/self/mountinfo"], fs.files["/proc/self/cgroup"]);
  EXPECT_TRUE(where.v2);
  EXPECT_EQ(where.dirs, (std::vector<std::string>{"/sys/fs/cgroup/agent", "/sys/fs/cgroup"}));
}

TEST(CpuLimit, APathOutsideTheMountsRootReadsNothing) {
  // c10 is not under c1, though its name starts the same: c1's limit is a
  // sibling's, not the process's.
  const auto where = cpuLimitDirs("700 600 0:23 /kubepods/pod1/c1 /sys/fs/cgroup ro - cgroup2 cgroup2 rw\n",
                                  "0::/kubepods/pod1/c10/agent\n");
  EXPECT_TRUE(where.dirs.empty());
}

TEST(CpuLimit, OfSeveralMountsTheOneHoldingTheProcess) {
  // The host's hierarchy mounted first (its root outside this namespace's
  // view), the container's own after it.
  FakeFs fs;
  fs.files["/proc/self/mountinfo"] =
      "600 500 0:23 /.. /host/sys/fs/cgroup ro - cgroup2 cgroup2 rw\n"
      "700 600 0:23 / /sys/fs/cgroup ro - cgroup2 cgroup2 rw\n";
  fs.files["/proc/self/cgroup"] = "0::/\n";
  fs.files["/host/sys/fs/cgroup/cpu.max"] = "max 100000\n";
  fs.files["/sys/fs/cgroup/cpu.max"] = "100000 100000\n";
  EXPECT_EQ(fs.limit(), 1.0);
}

TEST(CpuLimit, MountedAtTheFileSystemRoot) {
  const auto where = cpuLimitDirs("40 1 0:37 / / rw - cgroup2 cgroup2 rw\n", "0::/a/b\n");
  EXPECT_EQ(where.dirs, (std::vector<std::string>{"/a/b", "/a", "/"}));
}

TEST(CpuLimit, V1AnAncestorsSmallerQuotaBindsTheChild) {
  FakeFs fs;
  fs.files["/proc/self/mountinfo"] = kHybridMountinfo;
  fs.files["/proc/self/cgroup"] = "2:cpu,cpuacct:/pod/c1\n";
  fs.files["/sys/fs/cgroup/cpu,cpuacct/pod/c1/cpu.cfs_quota_us"] = "400000\n";
  fs.files["/sys/fs/cgroup/cpu,cpuacct/pod/c1/cpu.cfs_period_us"] = "100000\n";
  fs.files["/sys/fs/cgroup/cpu,cpuacct/pod/cpu.cfs_quota_us"] = "50000\n";
  fs.files["/sys/fs/cgroup/cpu,cpuacct/pod/cpu.cfs_period_us"] = "100000\n";
  EXPECT_EQ(fs.limit(), 0.5);
}

TEST(CpuLimit, V1OnAHybridHostIgnoresTheUnifiedHierarchy) {
  FakeFs fs;
  fs.files["/proc/self/mountinfo"] = kHybridMountinfo;
  fs.files["/proc/self/cgroup"] =
      "9:name=systemd:/\n3:cpuset:/\n2:cpu,cpuacct:/kubepods/burstable/pod1/c1\n0::/\n";
  fs.files["/sys/fs/cgroup/cpu,cpuacct/kubepods/burstable/pod1/c1/cpu.cfs_quota_us"] = "150000\n";
  fs.files["/sys/fs/cgroup/cpu,cpuacct/kubepods/burstable/pod1/c1/cpu.cfs_period_us"] = "100000\n";
  fs.files["/sys/fs/cgroup/cpu,cpuacct/kubepods/burstable/pod1/cpu.cfs_quota_us"] = "-1\n";
  fs.files["/sys/fs/cgroup/cpu,cpuacct/kubepods/burstable/pod1/cpu.cfs_period_us"] = "100000\n";
  fs.files["/sys/fs/cgroup/unified/cpu.max"] = "50000 100000\n";  // not where cpu is
  EXPECT_EQ(fs.limit(), 1.5);
  const auto where = cpuLimitDirs(fs.files["/proc/self/mountinfo"], fs.files["/proc/self/cgroup"]);
  EXPECT_FALSE(where.v2);
  ASSERT_EQ(where.dirs.size(), 5u);
  EXPECT_EQ(where.dirs.front(), "/sys/fs/cgroup/cpu,cpuacct/kubepods/burstable/pod1/c1");
  EXPECT_EQ(where.dirs.back(), "/sys/fs/cgroup/cpu,cpuacct");
}

TEST(CpuLimit, EscapedMountPoint) {
  FakeFs fs;
  fs.files["/proc/self/mountinfo"] = "40 30 0:37 / /mnt/cg\\040v2 rw - cgroup2 cgroup2 rw\n";
  fs.files["/proc/self/cgroup"] = "0::/a\n";
  fs.files["/mnt/cg v2/a/cpu.max"] = "100000 100000\n";
  EXPECT_EQ(fs.limit(), 1.0);
}

TEST(CpuLimit, NothingReadableIsNoLimit) {
  FakeFs fs;
  EXPECT_EQ(fs.limit(), std::nullopt) << "no /proc";
  fs.files["/proc/self/mountinfo"] = "22 1 259:1 / / rw - ext4 /dev/root rw\n";
  fs.files["/proc/self/cgroup"] = "0::/\n";
  EXPECT_EQ(fs.limit(), std::nullopt) << "no cgroup file system mounted";
  fs.files["/proc/self/mountinfo"] = "garbage\n\n - \n1 2 3 - cgroup2\n";
  EXPECT_EQ(fs.limit(), std::nullopt) << "malformed mountinfo";
}

}  // namespace
}  // namespace shadowtap::base
