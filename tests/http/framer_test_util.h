#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "http/http_stats.h"
#include "http/request.h"

namespace shadowtap::http::test {

class CollectingSink : public RequestSink {
 public:
  void onRequest(Request&& request) override { requests.push_back(std::move(request)); }
  std::vector<Request> requests;
};

inline std::span<const uint8_t> asBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Plain copy of HttpStats for comparisons.
struct StatsSnapshot {
  uint64_t streams, gaps, resyncs, connectionsAbandoned, parseErrors, upgrade, http2, tls;
  uint64_t requestsStarted, requestsParsed, noHost, multipleHost, invalidHost, tooLarge,
      droppedByGap, droppedAtEnd, droppedByAbandon, requestsInProgress;
  uint64_t bytesIn, bytesParsed, unmirroredBytes, bytesBuffered;
  bool operator==(const StatsSnapshot&) const = default;
};

inline StatsSnapshot snapshot(const HttpStats& s) {
  auto v = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  return {v(s.streams),           v(s.gaps),          v(s.resyncs),      v(s.connectionsAbandoned),
          v(s.parseErrors),       v(s.upgrade),       v(s.http2),        v(s.tls),
          v(s.requestsStarted),   v(s.requestsParsed), v(s.noHost),      v(s.multipleHost),
          v(s.invalidHost),       v(s.tooLarge),      v(s.droppedByGap), v(s.droppedAtEnd),
          v(s.droppedByAbandon),  v(s.requestsInProgress), v(s.bytesIn), v(s.bytesParsed),
          v(s.unmirroredBytes),   v(s.bytesBuffered)};
}

inline std::ostream& operator<<(std::ostream& os, const StatsSnapshot& s) {
  return os << "{started=" << s.requestsStarted << " parsed=" << s.requestsParsed
            << " noHost=" << s.noHost << " multipleHost=" << s.multipleHost
            << " invalidHost=" << s.invalidHost << " tooLarge=" << s.tooLarge
            << " gap=" << s.droppedByGap << " end=" << s.droppedAtEnd
            << " abandon=" << s.droppedByAbandon << " inProgress=" << s.requestsInProgress
            << " bytesIn=" << s.bytesIn << " bytesParsed=" << s.bytesParsed
            << " unmirrored=" << s.unmirroredBytes << " buffered=" << s.bytesBuffered
            << " parseErrors=" << s.parseErrors << " upgrade=" << s.upgrade << " http2=" << s.http2
            << " tls=" << s.tls << " abandoned=" << s.connectionsAbandoned
            << " resyncs=" << s.resyncs << " gaps=" << s.gaps << "}";
}

// The identities documented on HttpStats.
inline void expectIdentities(const HttpStats& st) {
  const StatsSnapshot s = snapshot(st);
  EXPECT_EQ(s.requestsStarted, s.requestsParsed + s.noHost + s.multipleHost + s.invalidHost +
                                   s.tooLarge + s.droppedByGap + s.droppedAtEnd +
                                   s.droppedByAbandon + s.requestsInProgress)
      << s;
  EXPECT_EQ(s.bytesIn, s.bytesParsed + s.unmirroredBytes + s.bytesBuffered) << s;
  EXPECT_EQ(s.connectionsAbandoned, s.parseErrors + s.upgrade + s.http2 + s.tls) << s;
}

}  // namespace shadowtap::http::test
