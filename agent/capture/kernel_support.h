#pragma once

#include <optional>
#include <string>

#include "capture/attach_mode.h"

namespace shadowtap::capture {

// Empty when this kernel has what the capture programs need for the given
// attach (the BPF ring buffer, tc programs; for XDP, XDP programs that may read
// multi-buffer frames); otherwise one line naming the missing piece and the
// kernel version that brought it. Needs the privileges to load BPF programs
// (check missingPrivileges() first): without them every probe says "no".
std::string missingKernelSupport(bool xdp);

// The one line for a failed program load: a verifier rejection is called one,
// with the verifier's last lines (from the libbpf log, see libbpf_log.h);
// missing privileges are named as such; anything else is the errno. `what`
// names the program, e.g. "the capture program".
std::string describeLoadFailure(const std::string& what, int err);

// Resolves the attach modes for `requested` with the loaded programs' fds
// (tc/tcx ingress and egress), before anything is attached: kAuto picks tcx
// where the kernel has it, else tc, and logs why; kTcx on a kernel without tcx
// is refused with one line saying what to use instead. nullopt and *error set
// then.
std::optional<AttachModes> resolveAttachModes(AttachMode requested, int ingressProgFd, int egressProgFd,
                                              std::string* error);

}  // namespace shadowtap::capture
