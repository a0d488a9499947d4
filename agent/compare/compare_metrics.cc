#include "compare/compare_metrics.h"

#include <algorithm>
#include <string>

#include "base/counters.h"

namespace shadowtap::compare {
namespace {

double v(const std::atomic<uint64_t>& a) { return static_cast<double>(base::load(a)); }

void exportPairingStats(const ResponsePairing& pairing, base::StatsSink& out) {
  const PairingStats& ps = pairing.stats();
  out.counters("shadowtap_compare_response_streams_total",
               "Primary response streams (egress) by the protocol their first bytes showed.", "protocol",
               {{"http1", v(ps.streamsHttp1)}, {"h2", v(ps.streamsH2)}});
  out.counter("shadowtap_compare_pairing_broken_streams_total",
              "HTTP/1 connections whose request order became unknown (a request skipped, filtered out or lost "
              "in a capture gap): their exchanges from then on are not compared.",
              v(ps.brokenStreams));
  const h2::H2ResponseStats& hs = pairing.h2Stats();
  out.counters("shadowtap_compare_h2_response_streams_total",
               "HTTP/2 primary response streams decoded for comparison, by outcome.", "outcome",
               {{"response", v(hs.responses)},
                {"reset", v(hs.reset)},
                {"evicted", v(hs.evicted)},
                {"malformed", v(hs.malformedStreams)},
                {"abandoned", v(hs.abandoned)}});
  const double otherDecodeErrors =
      std::max(0.0, v(hs.decodeErrors) - v(hs.badPreface) - v(hs.hpackErrors) - v(hs.frameTooLarge));
  out.counters("shadowtap_compare_h2_response_connections_failed_total",
               "HTTP/2 primary response streams whose decoding stopped early, by reason.", "reason",
               {{"bad_preface", v(hs.badPreface)},
                {"hpack_error", v(hs.hpackErrors)},
                {"frame_too_large", v(hs.frameTooLarge)},
                {"other_decode_error", otherDecodeErrors},
                {"gap", v(hs.gaps)}});
}

}  // namespace

void exportPairing(const ResponsePairing& pairing, base::StatsSink& out) { exportPairingStats(pairing, out); }

void exportStats(const CompareEngine& engine, const ResponsePairing* pairing, const DiffWriter* diff,
                 uint64_t responseSegments, base::StatsSink& out) {
  const CompareStats& cs = engine.stats();
  // Per rule and endpoint (method + path template); equal + different + noisy = compared.
  cs.forEachEndpoint([&out](uint32_t rule, const std::string& endpoint, const CompareCounters& c) {
    out.counters("shadowtap_compare_exchanges_total",
                 "Compared exchanges (primary vs mirror response) by rule, endpoint and result.", "result",
                 {{"equal", v(c.equal)}, {"different", v(c.different)}, {"noisy", v(c.noisy)}},
                 {{"rule", std::to_string(rule)}, {"endpoint", endpoint}});
  });
  // Every exchange begun ends compared or in one of these.
  out.counters("shadowtap_compare_exchanges_uncompared_total", "Exchanges begun but not compared, by reason.",
               "reason",
               {{"no_primary", v(cs.noPrimary)},
                {"no_mirror", v(cs.noMirror)},
                {"expired", v(cs.expired)},
                {"queue_full", v(cs.queueFull)}});
  out.counter("shadowtap_compare_exchanges_without_secondary_total",
              "Compared exchanges of rules with a secondary whose secondary's response did not come (an error, a "
              "drop): compared without its noise; included in shadowtap_compare_exchanges_total.",
              v(cs.noSecondary));
  out.counter("shadowtap_compare_exchanges_begun_total", "Exchanges begun (requests of compared rules).",
              v(cs.exchanges));
  out.counter("shadowtap_compare_exchanges_refused_total",
              "Requests of compared rules not compared: too many exchanges pending.", v(cs.refused));
  out.gauge("shadowtap_compare_exchanges_pending", "Exchanges waiting for responses.", v(cs.pending));
  // begun == compared + uncompared + pending + queued.
  out.gauge("shadowtap_compare_exchanges_queued", "Exchanges with both responses, waiting for the comparison thread.",
            v(cs.queued));
  out.gauge("shadowtap_compare_held_bytes", "Bytes of responses kept for pending and queued exchanges.",
            v(cs.heldBytes));
  out.counter("shadowtap_compare_responses_over_memory_total",
              "Responses not kept because the kept ones reached the engine's memory bound (256 MiB); their "
              "exchanges end uncompared, or compared without the secondary.",
              v(cs.overMemory));
  out.counter("shadowtap_compare_late_responses_total",
              "Responses for an exchange no longer pending (after it expired or was given up), ignored.",
              v(cs.unknownParts));
  out.counter("shadowtap_compare_response_segments_total",
              "Response segments of the primary (egress capture) reassembled for comparison.",
              static_cast<double>(responseSegments));
  if (pairing != nullptr) {
    exportPairingStats(*pairing, out);
  }
  if (diff != nullptr) {
    out.counter("shadowtap_compare_diff_lines_total", "Differing pairs written to --compare-output.",
                v(diff->stats().lines));
  }
}

}  // namespace shadowtap::compare
