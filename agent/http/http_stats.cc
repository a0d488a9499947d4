#include "http/http_stats.h"

#include "base/counters.h"

namespace shadowtap::http {

void exportStats(const HttpStats& hs, base::StatsSink& out) {
  auto v = [](const auto& a) { return static_cast<double>(base::load(a)); };
  out.counter("shadowtap_http_requests_parsed_total", "Complete requests framed.", v(hs.requestsParsed));
  out.counters("shadowtap_http_requests_skipped_total", "Requests not mirrored, by reason.", "reason",
               {
                   {"no_host", v(hs.noHost)},
                   {"multiple_host", v(hs.multipleHost)},
                   {"invalid_host", v(hs.invalidHost)},
                   {"too_large", v(hs.tooLarge)},
                   {"headers_too_large", v(hs.headersTooLarge)},
                   {"gap", v(hs.droppedByGap)},
                   {"stream_ended", v(hs.droppedAtEnd)},
                   {"connection_abandoned", v(hs.droppedByAbandon)},
               });
  out.counters("shadowtap_http_connections_abandoned_total", "Connections whose rest is not mirrored, by reason.",
               "reason",
               {
                   {"parse_error", v(hs.parseErrors)},
                   {"upgrade", v(hs.upgrade)},
                   {"connect", v(hs.connect)},
                   {"http2", v(hs.http2)},
                   {"tls", v(hs.tls)},
                   {"ambiguous_length", v(hs.ambiguousLength)},
                   {"conflicting_length", v(hs.conflictingLength)},
                   {"invalid_length", v(hs.invalidLength)},
                   {"obs_fold", v(hs.obsFold)},
                   {"bare_lf", v(hs.bareLf)},
                   {"invalid_header_name", v(hs.invalidHeaderName)},
                   {"invalid_header_value", v(hs.invalidHeaderValue)},
                   {"invalid_request_line", v(hs.invalidRequestLine)},
                   {"request_line_too_long", v(hs.requestLineTooLong)},
                   {"bare_cr", v(hs.bareCr)},
                   {"transfer_coding", v(hs.transferCoding)},
                   {"asterisk_form", v(hs.asteriskForm)},
               });
  out.counters("shadowtap_http_connections_closed_total",
               "Connections whose rest is not mirrored because the server closes them after a request, by reason.",
               "reason", {{"connection_close", v(hs.closedByRequest)}, {"refused_request", v(hs.closedAfterRefused)}});
  out.counters("shadowtap_http_requests_tolerated_total",
               "Requests mirrored though not in canonical form, by variation (docs/http1.md).", "variation",
               {
                   {"bare_lf", v(hs.toleratedBareLf)},
                   {"extension_method", v(hs.extensionMethod)},
                   {"http10_without_host", v(hs.http10WithoutHost)},
                   {"ignored_header_name", v(hs.ignoredHeaderName)},
               });
  out.counter("shadowtap_http_requests_streamed_total",
              "Requests over the whole-request limit emitted with their body streamed (in requests_parsed).",
              v(hs.requestsStreamed));
  out.counters("shadowtap_http_streams_ended_total", "Streamed request bodies, by how their stream ended.", "end",
               {
                   {"complete", v(hs.streamsCompleted)},
                   {"gap", v(hs.streamsAbortedGap)},
                   {"stream_ended", v(hs.streamsAbortedEnd)},
                   {"refused", v(hs.streamsAbortedRefused)},
                   {"window_full", v(hs.streamsOverflowed)},
                   {"let_go", v(hs.streamsLetGo)},
               });
  out.counter("shadowtap_http_streamed_bytes_total", "Body bytes handed to streamed requests' windows.",
              v(hs.bytesStreamed));
  out.counter("shadowtap_http_unmirrored_bytes_total",
              "Stream bytes skipped (before a resync point, in skipped requests, after abandonment).",
              v(hs.unmirroredBytes));
}

}  // namespace shadowtap::http
