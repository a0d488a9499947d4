#include "capture/capture_metrics.h"

#include <algorithm>

#include "base/counters.h"

namespace shadowtap::capture {

namespace {

double kv(uint64_t value) { return static_cast<double>(value); }

// --tls: the probes' connections and copies, and the wire's view of them.
void exportTlsStats(const KernelCounters& k, const CaptureStats& cs, base::StatsSink& out) {
  const uint64_t followed = k.tlsMatched - std::min(k.tlsMatched, k.tlsSampledOut + k.tlsConnsFull);
  const uint64_t noRule = k.tlsSetFd - std::min(k.tlsSetFd, k.tlsNotTcp + k.tlsMatched);
  out.counters("shadowtap_kernel_tls_connections_total",
               "TLS connections (SSL_set_fd calls in probed processes), by what became of them.", "outcome",
               {
                   {"followed", kv(followed)},
                   {"no_rule", kv(noRule)},
                   {"not_tcp", kv(k.tlsNotTcp)},
                   {"sampled_out", kv(k.tlsSampledOut)},
                   {"table_full", kv(k.tlsConnsFull)},
               });
  const TlsCoverageStats& tc = cs.tlsCoverage;
  out.counters("shadowtap_tls_wire_connections_total",
               "TLS connections seen on the wire (to a rule's port), by whether their plaintext came from the "
               "probes: covered, no_plaintext (the server's TLS is not the probed libssl), joined_late "
               "(established before the probes), untracked (the tracker's table was full).",
               "plaintext",
               {
                   {"covered", kv(base::load(tc.covered))},
                   {"no_plaintext", kv(base::load(tc.noPlaintext))},
                   {"joined_late", kv(base::load(tc.joinedLate))},
                   {"untracked", kv(base::load(tc.untracked))},
               });
  for (const auto& [server, n] : tc.servers()) {
    out.counters("shadowtap_tls_wire_connections_without_plaintext_total",
                 "TLS connections seen on the wire whose plaintext never came, by server (ADDR:PORT; the first 32, "
                 "then other).",
                 "server", {{server, kv(n)}});
  }
  out.counter("shadowtap_kernel_tls_connections_ended_total", "Followed TLS connections ended by SSL_free.",
              kv(k.tlsFreed));
  out.counter("shadowtap_kernel_tls_calls_copied_total", "SSL_read/SSL_write results copied whole.",
              kv(k.tlsCopied));
  out.counter("shadowtap_kernel_tls_bytes_copied_total", "TLS plaintext bytes copied into the ring buffer.",
              kv(k.tlsCopiedBytes));
  out.counter("shadowtap_kernel_tls_read_faults_total",
              "TLS plaintext the kernel could not read from the process's memory.", kv(k.tlsReadFault));
  out.counter("shadowtap_kernel_tls_calls_untracked_total",
              "SSL_read/SSL_write calls not followed: too many in flight at once.", kv(k.tlsCallsFull));
}

}  // namespace

void exportStats(const KernelCounters& k, const CaptureStats& cs, size_t attachedInterfaces, bool egress,
                 base::StatsSink& out) {
  out.counter("shadowtap_kernel_packets_total", "Packets the capture program ran on.", kv(k.seen));
  out.counters("shadowtap_kernel_packets_skipped_total", "Packets not inspected further, by reason.", "reason",
               {
                   {"not_ip", kv(k.notIp)},
                   {"not_tcp", kv(k.notTcp)},
                   {"malformed", kv(k.malformed)},
                   {"ipv4_fragment", kv(k.ipv4Fragment)},
                   {"ipv6_fragment", kv(k.ipv6Fragment)},
                   {"ipv6_extension_unsupported", kv(k.ipv6ExtensionUnsupported)},
                   {"vlan_too_deep", kv(k.vlanTooDeep)},
               });
  out.counter("shadowtap_kernel_packets_matched_total", "TCP packets to a port with a rule.", kv(k.matched));
  out.counter("shadowtap_kernel_packets_sampled_out_total",
              "Matched packets of connections outside the mirror percentage.", kv(k.sampledOut));
  out.counter("shadowtap_kernel_segments_copied_total", "Segments copied whole into the ring buffer.", kv(k.copied));
  out.counter("shadowtap_kernel_payload_bytes_copied_total", "Payload bytes copied into the ring buffer.",
              kv(k.copiedBytes));
  out.counter("shadowtap_kernel_records_lost_total", "Ring buffer records lost because the ring buffer was full.",
              kv(k.ringbufFull));
  out.counter("shadowtap_kernel_records_no_ring_total",
              "Ring buffer records lost because their worker had no ring buffer (a bug if ever non-zero).",
              kv(k.noRing));
  out.counter("shadowtap_kernel_segments_truncated_total", "Segments larger than the chunk limit.", kv(k.truncated));
  if (egress) {
    out.counter("shadowtap_kernel_egress_segments_copied_total",
                "Response segments copied by the egress program (compare mode).", kv(k.egressCopied));
  }
  if (k.tls) {
    exportTlsStats(k, cs, out);
  }
  out.counter("shadowtap_capture_records_total", "Ring buffer records read.", kv(base::load(cs.records)));
  out.counter("shadowtap_capture_bad_records_total", "Ring buffer records rejected.", kv(base::load(cs.badRecords)));
  out.gauge("shadowtap_capture_interfaces", "Interfaces the capture program is attached to.",
            static_cast<double>(attachedInterfaces));
  out.counters("shadowtap_capture_interfaces_not_attached_total",
               "Matching interfaces the capture program was not attached to, by reason: not_ethernet (no Ethernet "
               "header: tun, WireGuard, IP tunnels), attach_error (attaching failed; logged).",
               "reason",
               {
                   {"not_ethernet", kv(base::load(cs.notEthernet))},
                   {"attach_error", kv(base::load(cs.attachErrors))},
               });
}

}  // namespace shadowtap::capture
