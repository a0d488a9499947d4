#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shadowtap::base {

// The CPU bandwidth limit of this process's cgroup, in CPUs (a container's
// `resources.limits.cpu`: 0.5, 1, 2...), or nullopt when there is none or it
// cannot be read. The smallest limit from the process's cgroup up to the root
// of the hierarchy counts (Kubernetes limits the pod and the container), with
// cgroup v2 (`cpu.max`) or v1 (`cpu.cfs_quota_us` / `cpu.cfs_period_us`).
std::optional<double> cpuLimitCores();

// The parts, pure, for tests.

// A `cpu.max` line ("max 100000", "150000 100000"): quota / period in CPUs,
// nullopt for "max" or anything malformed.
std::optional<double> parseCpuMax(std::string_view cpuMax);
// cgroup v1's quota and period files' contents (quota -1: no limit).
std::optional<double> parseCfsQuota(std::string_view quota, std::string_view period);

// Where a process's CPU limit files are: the directories from its cgroup up to
// the mount of the hierarchy that holds the cpu controller (innermost first),
// from /proc/self/mountinfo and /proc/self/cgroup: v1's cpu hierarchy where
// one is mounted (a hybrid system binds the cpu controller there), else v2's.
// None when no mount of it holds the process's cgroup.
struct CpuLimitDirs {
  bool v2 = false;
  std::vector<std::string> dirs;
};
CpuLimitDirs cpuLimitDirs(std::string_view mountinfo, std::string_view procCgroup);

// cpuLimitCores over any file reader (tests give a fake file system).
std::optional<double> cpuLimitCores(const std::function<std::optional<std::string>(const std::string&)>& readFile);

}  // namespace shadowtap::base
