#pragma once

#include <atomic>
#include <cstdint>

#include "capture/tls_coverage.h"

namespace shadowtap::capture {

// Agent-side counters of the ring buffer consumer and the interface tracking.
struct CaptureStats {
  std::atomic<uint64_t> records{0};
  std::atomic<uint64_t> badRecords{0};  // too short, wrong ABI version, inconsistent lengths
  std::atomic<uint64_t> payloadBytes{0};
  std::atomic<uint64_t> polls{0};          // consume() calls
  std::atomic<uint64_t> emptyPolls{0};     // consume() calls that found no record
  std::atomic<uint64_t> attaches{0};       // interfaces attached (at start and later)
  std::atomic<uint64_t> forgotten{0};      // interfaces gone, renamed away or detached
  std::atomic<uint64_t> attachErrors{0};   // matching interfaces we could not attach to
  std::atomic<uint64_t> notEthernet{0};    // matching interfaces skipped: no Ethernet header (tun, wg, ipip)
  std::atomic<uint64_t> staleRemoved{0};   // leftovers of earlier runs removed
  std::atomic<uint64_t> linkRescans{0};    // full rescans after lost link notifications
  // XDP mode: interfaces where libxdp attached our program without its
  // dispatcher, so other XDP programs cannot run there (logged as a warning).
  std::atomic<uint64_t> xdpWithoutDispatcher{0};
  // Compare mode: records of the egress (response) direction, of `records`, and
  // egress hooks attached (an interface counts once per time its hook is attached).
  std::atomic<uint64_t> fromServerRecords{0};
  std::atomic<uint64_t> egressAttaches{0};
  // --tls: TLS connections on the wire whose plaintext never came (TlsCoverage).
  TlsCoverageStats tlsCoverage;
};

}  // namespace shadowtap::capture
