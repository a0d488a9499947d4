#include "capture/privileges.h"

#include <fstream>
#include <string>
#include <vector>

namespace shadowtap::capture {
namespace {

constexpr int kCapNetAdmin = 12;
constexpr int kCapSysAdmin = 21;
constexpr int kCapPerfmon = 38;
constexpr int kCapBpf = 39;

// Effective capability set of this process, from /proc/self/status.
bool effectiveCaps(unsigned long long* caps) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("CapEff:", 0) == 0) {
      *caps = std::stoull(line.substr(7), nullptr, 16);
      return true;
    }
  }
  return false;
}

}  // namespace

std::string missingPrivileges() {
  unsigned long long caps = 0;
  if (!effectiveCaps(&caps)) {
    return "";  // cannot tell; let the kernel answer
  }
  auto has = [caps](int cap) { return (caps >> cap) & 1ULL; };
  std::vector<std::string> missing;
  if (!has(kCapNetAdmin)) {
    missing.push_back("CAP_NET_ADMIN");
  }
  // CAP_SYS_ADMIN covers BPF and perfmon on kernels before 5.8 and still works after.
  if (!has(kCapSysAdmin)) {
    if (!has(kCapBpf)) {
      missing.push_back("CAP_BPF");
    }
    if (!has(kCapPerfmon)) {
      missing.push_back("CAP_PERFMON");
    }
  }
  if (missing.empty()) {
    return "";
  }
  std::string list;
  for (const auto& m : missing) {
    list += (list.empty() ? "" : ", ") + m;
  }
  return "missing privileges: " + list +
         " (run as root, or grant CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON to the process)";
}

}  // namespace shadowtap::capture
