#pragma once

#include <cstddef>
#include <cstdint>

namespace shadowtap::capture {

// The capture programs' own counters, summed over CPUs, by name. The kernel
// keeps them by index in a per-CPU array; those indices are the kernel/user ABI
// and stay inside capture/. Ingress counters come from the tc, tcx and XDP
// programs alike; egress ones from compare mode's response program.
struct KernelCounters {
  uint64_t seen = 0;                      // packets the ingress program ran on
  // Not inspected further, by reason:
  uint64_t notIp = 0;                     // not IPv4/IPv6 (ARP, LLDP, ...)
  uint64_t notTcp = 0;                    // IP but not TCP
  uint64_t malformed = 0;                 // header truncated or inconsistent
  uint64_t ipv4Fragment = 0;              // IPv4 fragments
  uint64_t ipv6Fragment = 0;              // IPv6 with a fragment header
  uint64_t ipv6ExtensionUnsupported = 0;  // IPv6 extension chain too long or unsupported
  uint64_t vlanTooDeep = 0;               // more in-band VLAN tags than the program steps over
  uint64_t matched = 0;                   // TCP to a port with a rule
  uint64_t prefixMatched = 0;             // of matched: by a rule narrowed to a destination prefix
  uint64_t sampledOut = 0;                // matched, but the connection is not in the sample
  uint64_t copied = 0;                    // segments copied whole into the ring buffer
  uint64_t copiedBytes = 0;               // payload bytes copied
  uint64_t ringbufFull = 0;               // records lost because the ring buffer was full
  uint64_t truncated = 0;                 // segments longer than the chunk limit
  uint64_t wakeups = 0;                   // records submitted with a forced consumer wakeup
  uint64_t egressSeen = 0;                // packets the egress program ran on
  uint64_t egressMatched = 0;             // TCP from a port (and address) with a compare rule
  uint64_t egressSampledOut = 0;          // matched, but the connection is not in the sample
  uint64_t egressCopied = 0;              // response segments copied whole into the ring buffer
  uint64_t egressCopiedBytes = 0;         // response payload bytes copied
  uint64_t noRing = 0;                    // records lost: their worker had no ring buffer (a bug if ever non-zero)
  bool tls = false;                       // the TLS programs are loaded (--tls): their counters mean something
  // The TLS programs (--tls): SSL_set_fd calls, and of those:
  uint64_t tlsSetFd = 0;
  uint64_t tlsNotTcp = 0;                 // on an fd that is not a TCP socket
  uint64_t tlsMatched = 0;                // on a socket with a rule (local port, address)
  uint64_t tlsSampledOut = 0;             // matched, not in the sample
  uint64_t tlsConnsFull = 0;              // matched and sampled, but the connection table was full
  uint64_t tlsCopied = 0;                 // SSL_read/SSL_write results copied whole
  uint64_t tlsCopiedBytes = 0;            // plaintext bytes copied
  uint64_t tlsReadFault = 0;              // plaintext the kernel could not read from the process
  uint64_t tlsCallsFull = 0;              // calls not followed: too many in flight
  uint64_t tlsFreed = 0;                  // followed connections ended by SSL_free
};

// Names the kernel's counters: `values` holds `count` of them in the kernel's
// index order (as summed from its per-CPU array); indices this build does not
// know are ignored and counters missing from `values` stay 0.
KernelCounters nameKernelCounters(const uint64_t* values, size_t count);

}  // namespace shadowtap::capture
