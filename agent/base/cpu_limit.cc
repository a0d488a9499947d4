#include "base/cpu_limit.h"

#include <charconv>
#include <fstream>
#include <sstream>

#include "base/strings.h"

namespace shadowtap::base {
namespace {

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    const size_t at = s.find(sep, start);
    out.push_back(s.substr(start, at == std::string_view::npos ? std::string_view::npos : at - start));
    if (at == std::string_view::npos) {
      return out;
    }
    start = at + 1;
  }
}

std::optional<long long> toInt(std::string_view s) {
  s = trimSpace(s);
  long long v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) {
    return std::nullopt;
  }
  return v;
}

std::optional<double> ratio(std::optional<long long> quota, std::optional<long long> period) {
  if (!quota || !period || *quota <= 0 || *period <= 0) {
    return std::nullopt;
  }
  return static_cast<double>(*quota) / static_cast<double>(*period);
}

bool hasToken(std::string_view list, std::string_view token) {
  for (std::string_view t : split(list, ',')) {
    if (t == token) {
      return true;
    }
  }
  return false;
}

// mountinfo writes a space, tab, newline or backslash in a path as \ooo.
std::string unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      int v = 0;
      bool octal = true;
      for (size_t k = 1; k <= 3; ++k) {
        octal = octal && s[i + k] >= '0' && s[i + k] <= '7';
        v = v * 8 + (s[i + k] - '0');
      }
      if (octal) {
        out.push_back(static_cast<char>(v));
        i += 3;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

struct Mount {
  std::string root;
  std::string point;
};

// The cgroup v1 mounts carrying the cpu controller, else the v2 mounts (a
// container may see the hierarchy mounted more than once, at different roots).
std::vector<Mount> cpuMounts(std::string_view mountinfo, bool* v2) {
  std::vector<Mount> v1, unified;
  for (std::string_view line : split(mountinfo, '\n')) {
    const size_t dash = line.find(" - ");
    if (dash == std::string_view::npos) {
      continue;
    }
    const auto before = split(line.substr(0, dash), ' ');
    const auto after = split(line.substr(dash + 3), ' ');
    if (before.size() < 5 || after.size() < 3) {
      continue;
    }
    Mount m{unescape(before[3]), unescape(before[4])};
    if (after[0] == "cgroup" && hasToken(after[2], "cpu")) {
      v1.push_back(std::move(m));
    } else if (after[0] == "cgroup2") {
      unified.push_back(std::move(m));
    }
  }
  *v2 = v1.empty();
  return v1.empty() ? unified : v1;
}

// `root` is `path` or one of its ancestors.
bool isUnder(std::string_view path, std::string_view root) {
  return path.compare(0, root.size(), root) == 0 &&
         (root == "/" || path.size() == root.size() || path[root.size()] == '/');
}

// The process's path in the hierarchy: v2's "0::/path", or the v1 line whose
// controllers include cpu.
std::optional<std::string> cgroupPath(std::string_view procCgroup, bool v2) {
  for (std::string_view line : split(procCgroup, '\n')) {
    const size_t first = line.find(':');
    const size_t second = first == std::string_view::npos ? first : line.find(':', first + 1);
    if (second == std::string_view::npos) {
      continue;
    }
    const std::string_view id = line.substr(0, first);
    const std::string_view controllers = line.substr(first + 1, second - first - 1);
    const bool match = v2 ? (id == "0" && controllers.empty()) : hasToken(controllers, "cpu");
    if (match) {
      return std::string(line.substr(second + 1));
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<double> parseCpuMax(std::string_view cpuMax) {
  const auto fields = split(trimSpace(cpuMax), ' ');
  if (fields.size() != 2 || fields[0] == "max") {
    return std::nullopt;
  }
  return ratio(toInt(fields[0]), toInt(fields[1]));
}

std::optional<double> parseCfsQuota(std::string_view quota, std::string_view period) {
  return ratio(toInt(quota), toInt(period));
}

CpuLimitDirs cpuLimitDirs(std::string_view mountinfo, std::string_view procCgroup) {
  CpuLimitDirs out;
  const std::vector<Mount> mounts = cpuMounts(mountinfo, &out.v2);
  const auto path = cgroupPath(procCgroup, out.v2);
  if (!path) {
    return out;
  }
  // The mount whose root holds the process's cgroup, the deepest if several
  // do. In a container with its own cgroup namespace the path is "/" and so is
  // the root. None does (a path outside every mounted part of the tree): no
  // directory, rather than a sibling cgroup's limit.
  const Mount* mount = nullptr;
  for (const Mount& m : mounts) {
    if (isUnder(*path, m.root) && (mount == nullptr || m.root.size() > mount->root.size())) {
      mount = &m;
    }
  }
  if (mount == nullptr) {
    return out;
  }
  std::string rel = path->substr(mount->root == "/" ? 0 : mount->root.size());
  while (!rel.empty() && rel.back() == '/') {
    rel.pop_back();
  }
  const std::string top = mount->point == "/" ? "" : mount->point;
  std::string dir = top + rel;
  for (;;) {
    out.dirs.push_back(dir.empty() ? "/" : dir);
    if (dir.size() <= top.size()) {
      break;
    }
    const size_t up = dir.rfind('/');
    if (up == std::string::npos) {
      break;
    }
    dir.resize(up);
  }
  return out;
}

std::optional<double> cpuLimitCores(const std::function<std::optional<std::string>(const std::string&)>& readFile) {
  const auto mountinfo = readFile("/proc/self/mountinfo");
  const auto procCgroup = readFile("/proc/self/cgroup");
  if (!mountinfo || !procCgroup) {
    return std::nullopt;
  }
  const CpuLimitDirs where = cpuLimitDirs(*mountinfo, *procCgroup);
  std::optional<double> smallest;
  for (const std::string& dir : where.dirs) {
    std::optional<double> limit;
    if (where.v2) {
      if (const auto max = readFile(dir + "/cpu.max")) {
        limit = parseCpuMax(*max);
      }
    } else {
      const auto quota = readFile(dir + "/cpu.cfs_quota_us");
      const auto period = readFile(dir + "/cpu.cfs_period_us");
      if (quota && period) {
        limit = parseCfsQuota(*quota, *period);
      }
    }
    if (limit && (!smallest || *limit < *smallest)) {
      smallest = limit;
    }
  }
  return smallest;
}

std::optional<double> cpuLimitCores() {
  return cpuLimitCores([](const std::string& path) -> std::optional<std::string> {
    std::ifstream in(path);
    if (!in) {
      return std::nullopt;
    }
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  });
}

}  // namespace shadowtap::base
