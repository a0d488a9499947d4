#include "capture/kernel_counters.h"

#include <iterator>

#include "capture/abi_check.h"
#include "shadowtap/capture_abi.h"

namespace shadowtap::capture {
namespace {

// Kernel index -> named counter, in ABI order. Every index has a name.
constexpr uint64_t KernelCounters::*kByIndex[] = {
    &KernelCounters::seen,          // ST_CNT_SEEN
    &KernelCounters::notIp,         // ST_CNT_NOT_IP
    &KernelCounters::notTcp,        // ST_CNT_NOT_TCP
    &KernelCounters::malformed,     // ST_CNT_MALFORMED
    &KernelCounters::ipv4Fragment,  // ST_CNT_IP_FRAGMENT
    &KernelCounters::matched,       // ST_CNT_MATCHED
    &KernelCounters::sampledOut,    // ST_CNT_SAMPLED_OUT
    &KernelCounters::copied,        // ST_CNT_COPIED
    &KernelCounters::copiedBytes,   // ST_CNT_COPIED_BYTES
    &KernelCounters::ringbufFull,   // ST_CNT_RINGBUF_FULL
    &KernelCounters::truncated,     // ST_CNT_TRUNCATED
    &KernelCounters::ipv6ExtensionUnsupported,  // ST_CNT_IPV6_EXT_SKIPPED
    &KernelCounters::ipv6Fragment,              // ST_CNT_IPV6_FRAGMENT
    &KernelCounters::vlanTooDeep,               // ST_CNT_VLAN_TOO_DEEP
    &KernelCounters::prefixMatched,             // ST_CNT_PREFIX_MATCHED
    &KernelCounters::wakeups,                   // ST_CNT_WAKEUPS
    &KernelCounters::egressSeen,                // ST_CNT_EGRESS_SEEN
    &KernelCounters::egressMatched,             // ST_CNT_EGRESS_MATCHED
    &KernelCounters::egressSampledOut,          // ST_CNT_EGRESS_SAMPLED_OUT
    &KernelCounters::egressCopied,              // ST_CNT_EGRESS_COPIED
    &KernelCounters::egressCopiedBytes,         // ST_CNT_EGRESS_COPIED_BYTES
    &KernelCounters::noRing,                    // ST_CNT_NO_RING
    &KernelCounters::tlsSetFd,                  // ST_CNT_TLS_SET_FD
    &KernelCounters::tlsNotTcp,                 // ST_CNT_TLS_NOT_TCP
    &KernelCounters::tlsMatched,                // ST_CNT_TLS_MATCHED
    &KernelCounters::tlsSampledOut,             // ST_CNT_TLS_SAMPLED_OUT
    &KernelCounters::tlsConnsFull,              // ST_CNT_TLS_CONNS_FULL
    &KernelCounters::tlsCopied,                 // ST_CNT_TLS_COPIED
    &KernelCounters::tlsCopiedBytes,            // ST_CNT_TLS_COPIED_BYTES
    &KernelCounters::tlsReadFault,              // ST_CNT_TLS_READ_FAULT
    &KernelCounters::tlsCallsFull,              // ST_CNT_TLS_CALLS_FULL
    &KernelCounters::tlsFreed,                  // ST_CNT_TLS_FREED
};
static_assert(std::size(kByIndex) == ST_CNT_MAX, "name every kernel counter");
static_assert(ST_CNT_SEEN == 0 && ST_CNT_NOT_IP == 1 && ST_CNT_NOT_TCP == 2 && ST_CNT_MALFORMED == 3 &&
              ST_CNT_IP_FRAGMENT == 4 && ST_CNT_MATCHED == 5 && ST_CNT_SAMPLED_OUT == 6 && ST_CNT_COPIED == 7 &&
              ST_CNT_COPIED_BYTES == 8 && ST_CNT_RINGBUF_FULL == 9 && ST_CNT_TRUNCATED == 10,
              "kByIndex follows the ABI's order (abi_check.h pins the rest)");

}  // namespace

KernelCounters nameKernelCounters(const uint64_t* values, size_t count) {
  KernelCounters out;
  for (size_t i = 0; i < count && i < std::size(kByIndex); ++i) {
    out.*kByIndex[i] = values[i];
  }
  return out;
}

}  // namespace shadowtap::capture
