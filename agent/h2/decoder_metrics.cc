#include "h2/decoder_metrics.h"

#include "base/counters.h"

namespace shadowtap::h2 {

void exportStats(const SnifferStats& ss, const H2DecoderStats& h2s, base::StatsSink& out) {
  auto v = [](const auto& a) { return static_cast<double>(base::load(a)); };
  out.counters("shadowtap_connections_detected_total", "Client connections by the protocol their first bytes showed.",
               "protocol",
               {{"h2_prior_knowledge", v(ss.prefaceH2)}, {"http1", v(ss.http1)}, {"midstream_http1", v(ss.midstream)}});
  out.counters("shadowtap_h2c_upgrades_total", "HTTP/1.1 requests asking for Upgrade: h2c, by what the client did next.",
               "outcome", {{"accepted", v(ss.upgradesAccepted)}, {"declined", v(ss.upgradesDeclined)}});
  out.counter("shadowtap_h2_connections_total", "HTTP/2 client connections decoded.", v(h2s.connections));
  out.counters("shadowtap_h2_connections_failed_total", "HTTP/2 connections whose rest was skipped, by reason.",
               "reason",
               {{"preface_mismatch", v(h2s.prefaceMismatch)}, {"decode_error", v(h2s.decodeErrors)}, {"gap", v(h2s.gaps)}});
  out.counter("shadowtap_h2_goaways_total", "GOAWAY frames sent by clients.", v(h2s.goaways));
  out.counter("shadowtap_h2_streams_opened_total", "Client streams that began a request.", v(h2s.streamsOpened));
  out.counters("shadowtap_h2_streams_total", "Client streams by outcome.", "outcome",
               {
                   {"request", v(h2s.requests)},
                   {"reset", v(h2s.streamsReset)},
                   {"refused", v(h2s.streamsRefused)},
                   {"headers_too_large", v(h2s.streamsHeadersTooLarge)},
                   {"body_too_large", v(h2s.streamsBodyTooLarge)},
                   {"buffer_full", v(h2s.streamsBufferFull)},
                   {"malformed", v(h2s.streamsMalformed)},
                   {"abandoned", v(h2s.streamsAbandoned)},
               });
  out.counter("shadowtap_h2_requests_with_trailers_total", "HTTP/2 requests that carried trailers.", v(h2s.trailers));
  out.counter("shadowtap_h2_invalid_frames_total", "Frames the HTTP/2 decoder rejected.", v(h2s.invalidFrames));
  out.counters("shadowtap_h2_bytes_total", "HTTP/2 connection bytes, decoded or skipped.", "state",
               {{"decoded", v(h2s.bytesDecoded)}, {"skipped", v(h2s.bytesSkipped)}});
  out.gauge("shadowtap_h2_buffered_bytes", "Bytes held by HTTP/2 streams being assembled.", v(h2s.bufferedBytes));
}

}  // namespace shadowtap::h2
