#pragma once

#include <string>

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

}  // namespace shadowtap::capture
