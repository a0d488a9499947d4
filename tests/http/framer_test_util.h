#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "http/http_stats.h"
#include "model/request.h"

namespace shadowtap::http::test {

class CollectingSink : public model::RequestSink {
 public:
  void onRequest(model::Request&& request) override { requests.push_back(std::move(request)); }
  std::vector<model::Request> requests;
};

// The flow of the framer tests' requests (198.18.0.1:40000 -> 198.18.0.2:8000).
inline model::FlowKey testKey() {
  model::FlowKey k;
  k.saddr = {198, 18, 0, 1};
  k.daddr = {198, 18, 0, 2};
  k.sport = 40000;
  k.dport = 8000;
  return k;
}

inline std::span<const uint8_t> asBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Plain copy of HttpStats for comparisons.
struct StatsSnapshot {
  uint64_t streams, gaps, resyncs, resyncLinesTooLong, closedByRequest, closedAfterRefused;
  uint64_t connectionsAbandoned, parseErrors, upgrade, connect, http2, tls, ambiguousLength,
      conflictingLength, invalidLength, obsFold, bareLf, bareCr, transferCoding, asteriskForm,
      invalidHeaderName, invalidHeaderValue, invalidRequestLine, requestLineTooLong;
  uint64_t requestsStarted, requestsParsed, noHost, multipleHost, invalidHost, tooLarge,
      headersTooLarge, droppedByGap, droppedAtEnd, droppedByAbandon, requestsInProgress;
  uint64_t toleratedBareLf, extensionMethod, http10WithoutHost, ignoredHeaderName;
  uint64_t bytesIn, bytesParsed, unmirroredBytes, bytesBuffered;
  bool operator==(const StatsSnapshot&) const = default;
};

inline StatsSnapshot snapshot(const HttpStats& s) {
  auto v = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  return {v(s.streams),           v(s.gaps),              v(s.resyncs),
          v(s.resyncLinesTooLong), v(s.closedByRequest),  v(s.closedAfterRefused),
          v(s.connectionsAbandoned), v(s.parseErrors),    v(s.upgrade),
          v(s.connect),           v(s.http2),             v(s.tls),
          v(s.ambiguousLength),   v(s.conflictingLength), v(s.invalidLength),
          v(s.obsFold),           v(s.bareLf),            v(s.bareCr),
          v(s.transferCoding),    v(s.asteriskForm),      v(s.invalidHeaderName),
          v(s.invalidHeaderValue), v(s.invalidRequestLine), v(s.requestLineTooLong),
          v(s.requestsStarted),   v(s.requestsParsed),    v(s.noHost),
          v(s.multipleHost),      v(s.invalidHost),       v(s.tooLarge),
          v(s.headersTooLarge),   v(s.droppedByGap),      v(s.droppedAtEnd),
          v(s.droppedByAbandon),  v(s.requestsInProgress), v(s.toleratedBareLf),
          v(s.extensionMethod),   v(s.http10WithoutHost), v(s.ignoredHeaderName), v(s.bytesIn),
          v(s.bytesParsed),       v(s.unmirroredBytes),   v(s.bytesBuffered)};
}

inline std::ostream& operator<<(std::ostream& os, const StatsSnapshot& s) {
  return os << "{started=" << s.requestsStarted << " parsed=" << s.requestsParsed
            << " noHost=" << s.noHost << " multipleHost=" << s.multipleHost
            << " invalidHost=" << s.invalidHost << " tooLarge=" << s.tooLarge
            << " headersTooLarge=" << s.headersTooLarge << " gap=" << s.droppedByGap
            << " end=" << s.droppedAtEnd << " abandon=" << s.droppedByAbandon
            << " inProgress=" << s.requestsInProgress << " bytesIn=" << s.bytesIn
            << " bytesParsed=" << s.bytesParsed << " unmirrored=" << s.unmirroredBytes
            << " buffered=" << s.bytesBuffered << " | abandoned=" << s.connectionsAbandoned
            << " parseErrors=" << s.parseErrors << " upgrade=" << s.upgrade
            << " connect=" << s.connect << " http2=" << s.http2 << " tls=" << s.tls
            << " ambiguousLength=" << s.ambiguousLength
            << " conflictingLength=" << s.conflictingLength
            << " invalidLength=" << s.invalidLength << " obsFold=" << s.obsFold
            << " bareLf=" << s.bareLf << " bareCr=" << s.bareCr
            << " transferCoding=" << s.transferCoding << " asteriskForm=" << s.asteriskForm
            << " invalidHeaderName=" << s.invalidHeaderName
            << " invalidHeaderValue=" << s.invalidHeaderValue
            << " invalidRequestLine=" << s.invalidRequestLine
            << " requestLineTooLong=" << s.requestLineTooLong << " | resyncs=" << s.resyncs
            << " resyncLinesTooLong=" << s.resyncLinesTooLong
            << " closedByRequest=" << s.closedByRequest
            << " closedAfterRefused=" << s.closedAfterRefused << " gaps=" << s.gaps
            << " | tolerated bareLf=" << s.toleratedBareLf << " extensionMethod=" << s.extensionMethod
            << " http10WithoutHost=" << s.http10WithoutHost
            << " ignoredHeaderName=" << s.ignoredHeaderName << "}";
}

inline uint64_t abandonReasons(const StatsSnapshot& s) {
  return s.parseErrors + s.upgrade + s.connect + s.http2 + s.tls + s.ambiguousLength +
         s.conflictingLength + s.invalidLength + s.obsFold + s.bareLf + s.bareCr + s.transferCoding +
         s.asteriskForm + s.invalidHeaderName + s.invalidHeaderValue + s.invalidRequestLine +
         s.requestLineTooLong;
}

// The identities documented on HttpStats.
inline void expectIdentities(const HttpStats& st) {
  const StatsSnapshot s = snapshot(st);
  EXPECT_EQ(s.requestsStarted, s.requestsParsed + s.noHost + s.multipleHost + s.invalidHost +
                                   s.tooLarge + s.headersTooLarge + s.droppedByGap +
                                   s.droppedAtEnd + s.droppedByAbandon + s.requestsInProgress)
      << s;
  EXPECT_EQ(s.bytesIn, s.bytesParsed + s.unmirroredBytes + s.bytesBuffered) << s;
  EXPECT_EQ(s.connectionsAbandoned, abandonReasons(s)) << s;
}

}  // namespace shadowtap::http::test
