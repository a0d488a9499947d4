#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "capture/attach_mode.h"
#include "capture/port_rule.h"

namespace shadowtap::capture {

struct CaptureOptions {
  // Interface names or fnmatch(3) patterns ("veth*", "cali*"). Every interface
  // matching one is attached at start and when it appears later; a plain name
  // (no *?[) must exist at start.
  std::vector<std::string> interfaces;
  std::vector<PortRule> rules;
  AttachMode attach = AttachMode::kAuto;
  uint32_t ringBufferBytes = 16u << 20;  // power of two, >= page size
  uint32_t tcHandle = 0x5354;            // "ST"; tc mode only
  uint32_t tcPriority = 1;               // tc mode only
  // tc mode: where the slot locks live (SlotLock), shared by the instances of a
  // host; empty: none, so a filter of ours is always taken for a leftover.
  std::string stateDir;
  uint32_t hashSeed = 0;                 // seed of the per-connection sampling hash
  // Adaptive wakeups: the kernel wakes the agent only once wakeupBytes are
  // waiting (0: ringBufferBytes / 8); otherwise the agent polls every
  // pollIntervalUs while records flow, backing off to idlePollIntervalUs when
  // the ring is quiet. false: the kernel's default wakeup on every record
  // committed while the agent is caught up.
  bool adaptiveWakeups = true;
  uint32_t wakeupBytes = 0;
  uint32_t pollIntervalUs = 2000;
  uint32_t idlePollIntervalUs = 50000;
};

}  // namespace shadowtap::capture
