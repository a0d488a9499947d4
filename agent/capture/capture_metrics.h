#pragma once

#include <cstddef>

#include "base/stats_sink.h"
#include "capture/capture_stats.h"
#include "capture/kernel_counters.h"

namespace shadowtap::capture {

// The kernel programs' counters and the ring reader's. `egress`: compare mode
// is on, so the response program's counters are exported too.
void exportStats(const KernelCounters& k, const CaptureStats& cs, size_t attachedInterfaces, bool egress,
                 base::StatsSink& out);

}  // namespace shadowtap::capture
