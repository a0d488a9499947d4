#include "capture/kernel_support.h"

#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <spdlog/spdlog.h>
#include <sys/utsname.h>

#include <cerrno>
#include <cstring>

#include "capture/libbpf_log.h"
#include "capture/privileges.h"
#include "capture/tcx_link.h"

namespace shadowtap::capture {
namespace {

// Lines of the verifier log worth showing: its verdict and what led to it.
constexpr size_t kVerifierLinesShown = 12;

}  // namespace

std::string missingKernelSupport(bool xdp) {
  LibbpfQuietScope quiet;  // a "no" from a probe is an answer, not a warning
  if (libbpf_probe_bpf_map_type(BPF_MAP_TYPE_RINGBUF, nullptr) != 1) {
    return "this kernel has no BPF ring buffer (BPF_MAP_TYPE_RINGBUF, Linux 5.8 or later); shadowtap needs it";
  }
  if (libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_SCHED_CLS, nullptr) != 1) {
    return "this kernel cannot load tc BPF programs (BPF_PROG_TYPE_SCHED_CLS, CONFIG_NET_CLS_BPF); "
           "shadowtap needs them";
  }
  if (xdp && libbpf_probe_bpf_helper(BPF_PROG_TYPE_XDP, BPF_FUNC_xdp_load_bytes, nullptr) != 1) {
    return "this kernel's XDP programs cannot read multi-buffer frames (bpf_xdp_load_bytes, Linux 5.18 or "
           "later), which --attach xdp needs; use --attach tc";
  }
  return "";
}

std::string describeLoadFailure(const std::string& what, int err) {
  const int e = err < 0 ? -err : err;
  if (std::string missing = missingPrivileges(); !missing.empty()) {
    return "cannot load " + what + ": " + missing;
  }
  std::vector<std::string> log = lastVerifierLog(kVerifierLinesShown);
  if (!log.empty()) {
    std::string out = "the kernel's BPF verifier rejected " + what + " (" + std::strerror(e) +
                      "); this kernel is not supported yet, please report it with `uname -r` and these last "
                      "lines of the verifier log (all of it with --log-level debug):";
    for (const std::string& line : log) {
      out += "\n  " + line;
    }
    return out;
  }
  if (e == EPERM || e == EACCES) {
    return "the kernel refused to load " + what + " (" + std::strerror(e) +
           ") although this process has CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN; a security policy (kernel "
           "lockdown, SELinux, AppArmor, a seccomp filter) may forbid bpf()";
  }
  return "cannot load " + what + " into the kernel: " + std::strerror(e) +
         "; run with --log-level debug for libbpf's messages";
}

std::optional<AttachModes> resolveAttachModes(AttachMode requested, int ingressProgFd, int egressProgFd,
                                              std::string* error) {
  AttachModes modes;
  std::string reason;
  switch (requested) {
    case AttachMode::kAuto:
      modes.ingress = tcxSupported(ingressProgFd, &reason) ? AttachMode::kTcx : AttachMode::kTc;
      spdlog::info("attach mode auto: using {} because {}", attachModeName(modes.ingress), reason);
      break;
    case AttachMode::kTcx:
      // Asked before trying: attaching would only fail with EINVAL, which says nothing.
      if (!tcxSupported(ingressProgFd, &reason)) {
        utsname u{};
        *error = std::string("this kernel (") + (uname(&u) == 0 ? u.release : "?") +
                 ") has no tcx (Linux 6.6 or later), which --attach tcx needs; use --attach tc or --attach auto";
        spdlog::debug("tcx probe: {}", reason);
        return std::nullopt;
      }
      [[fallthrough]];
    case AttachMode::kTc:
    case AttachMode::kXdp:
      modes.ingress = requested;
      spdlog::info("attach mode {} (as configured)", attachModeName(modes.ingress));
      break;
  }
  // XDP has no egress hook: responses are captured at tc egress, tcx if possible.
  modes.egress = modes.ingress;
  if (modes.ingress == AttachMode::kXdp) {
    modes.egress = tcxSupported(egressProgFd, &reason) ? AttachMode::kTcx : AttachMode::kTc;
  }
  return modes;
}

}  // namespace shadowtap::capture
