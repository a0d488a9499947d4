#pragma once

#include <string>

namespace shadowtap::capture {

// Whether this kernel lets us load and attach a freplace program
// (BPF_PROG_TYPE_EXT), which libxdp's multi-program dispatcher is built on: each
// program behind the dispatcher replaces one of its stub functions. The probe
// mirrors libxdp's own compatibility check with two tiny programs of our own
// (an XDP target with BTF and an extension of it), so it needs no file from
// libxdp and leaves nothing behind.
struct FreplaceProbe {
  int error = 0;       // 0: freplace works; else the negative errno of the failing step
  std::string stage;   // "setup", "load" or "attach" when error != 0
  std::string detail;  // one sentence for logs and test messages; empty when it works

  bool works() const { return error == 0; }
  // The kernel refused loading the extension with EPERM although this process
  // holds the BPF capabilities: it does not allow BPF trampolines (freplace,
  // fentry/fexit, LSM programs), as hardened or sandboxed builds may. Nothing
  // the agent can change.
  bool refusedByKernel = false;
};

FreplaceProbe probeFreplace();

}  // namespace shadowtap::capture
