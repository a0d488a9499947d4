#pragma once

#include <malloc.h>

namespace shadowtap {

// Requests come and go in buffers of up to several MiB: with glibc's defaults
// the heap top is handed back to the kernel after each large one and the next
// faults in fresh zeroed pages (a third of the time on 16 KiB POSTs, see
// tests/bench/RESULTS.md). Keeping some slack costs at most these amounts of
// RSS on top of what the flags' limits already bound. The agent and the
// pipeline benchmark both call this, so the benchmark measures what runs.
inline void tuneAllocatorForRequests() {
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
  mallopt(M_TOP_PAD, 16 << 20);
}

}  // namespace shadowtap
