#pragma once

#include <atomic>
#include <cstdint>

#include "base/latency_histogram.h"
#include "http/response_stats.h"
#include "replay/outcome.h"

namespace shadowtap::replay {

using base::LatencyHistogram;

// Counters of one MirrorPool, whatever its connection kind; relaxed atomics
// written by the submitting threads and the pool's loop, read by anyone. Every
// submitted request ends in exactly one outcome, so after MirrorPool::stop():
//   submitted == outcomes() == responses + errors() + queueFull + droppedOldest + droppedRateLimit +
//                              droppedShutdown + aborted()
struct MirrorStats {
  // Requests offered to submit(), including the ones it dropped.
  std::atomic<uint64_t> submitted{0};

  // Outcomes (see Outcome for what each means).
  std::atomic<uint64_t> queueFull{0};
  std::atomic<uint64_t> droppedOldest{0};
  std::atomic<uint64_t> droppedRateLimit{0};
  std::atomic<uint64_t> droppedShutdown{0};
  std::atomic<uint64_t> responses{0};  // split by class below
  std::atomic<uint64_t> errorsConnect{0};
  std::atomic<uint64_t> errorsConnectTimeout{0};
  std::atomic<uint64_t> errorsReset{0};
  std::atomic<uint64_t> errorsConnection{0};
  std::atomic<uint64_t> errorsResponseTimeout{0};
  std::atomic<uint64_t> errorsBadResponse{0};
  std::atomic<uint64_t> errorsResponseTooLarge{0};
  std::atomic<uint64_t> errorsRejected{0};
  // Streamed requests aborted for the capture's sake (see Outcome).
  std::atomic<uint64_t> abortedGap{0};
  std::atomic<uint64_t> abortedCapture{0};
  std::atomic<uint64_t> abortedWindow{0};

  // Final responses by status class (HTTP/1: 101 counts as 1xx; interim 1xx
  // responses are skipped), and the grpc-status of those that carried one.
  std::atomic<uint64_t> responses1xx{0};
  std::atomic<uint64_t> responses2xx{0};
  std::atomic<uint64_t> responses3xx{0};
  std::atomic<uint64_t> responses4xx{0};
  std::atomic<uint64_t> responses5xx{0};
  std::atomic<uint64_t> responsesOther{0};  // status outside 100-599
  std::atomic<uint64_t> grpcOk{0};          // grpc-status 0
  std::atomic<uint64_t> grpcError{0};       // grpc-status != 0

  // Activity.
  std::atomic<uint64_t> sent{0};  // HTTP/1 requests written completely
  std::atomic<uint64_t> streamsStarted{0};  // streamed requests whose head went out
  std::atomic<uint64_t> streamsSent{0};     // ... of them whose body went out whole (also in sent)
  std::atomic<uint64_t> bytesSent{0};
  std::atomic<uint64_t> bytesReceived{0};
  std::atomic<uint64_t> connectAttempts{0};
  std::atomic<uint64_t> connectionsOpened{0};  // connects that succeeded
  std::atomic<uint64_t> connectionsClosed{0};  // established connections closed, for any reason
  std::atomic<uint64_t> idleClosed{0};         // ... of them closed for having nothing to do (idle timeout)
  std::atomic<uint64_t> surplusClosed{0};      // ... of them beyond the floor, closed after the shrink time
  std::atomic<uint64_t> growthHolds{0};        // growth stopped after refused/timed-out connects or responses
  std::atomic<uint64_t> growthSaturated{0};    // growth stopped: more connections did not raise the answers a second
  std::atomic<uint64_t> noDescriptors{0};      // socket() failed with EMFILE/ENFILE: the pool stopped growing
  std::atomic<uint64_t> wakeups{0};            // eventfd writes by submit
  std::atomic<uint64_t> loopTurns{0};          // event loop iterations (tests wait on it)
  std::atomic<uint64_t> resolves{0};           // re-resolutions of the target's name
  std::atomic<uint64_t> resolveErrors{0};      // ... that failed or came back empty (the last addresses stay)
  std::atomic<uint64_t> resolvesOk{0};         // ... the others (counted apart: a difference read at scrape could fall)
  std::atomic<uint64_t> addressChanges{0};     // ... that changed the address list

  // Compare mode: requests with an exchange id end in exactly one of these.
  std::atomic<uint64_t> keptResponses{0};     // handed to ResponseObserver::onResponse
  std::atomic<uint64_t> missingResponses{0};  // reported to ResponseObserver::onMissing
  std::atomic<uint64_t> keptHeadersTruncated{0};  // kept responses whose header fields passed maxHeaderBytes
  std::atomic<uint64_t> keptBodiesTruncated{0};   // kept responses whose body passed maxBodyBytes
  // Framing of kept HTTP/1 responses (http::ResponseFramer).
  http::ResponseStats keptFraming;

  // Gauges.
  std::atomic<int64_t> queueDepth{0};
  std::atomic<int64_t> queueBytes{0};
  std::atomic<int64_t> inFlight{0};         // taken from the queue by a connection, no outcome yet
  std::atomic<int64_t> openConnections{0};  // connecting or established
  std::atomic<int64_t> inFlightWanted{0};   // requests in flight Little's law asks for (0: no latency yet)
  std::atomic<int64_t> connectionsFloor{0};  // connections opened on demand without a latency (set at construction)
  std::atomic<int64_t> connectionsMax{0};    // connections at most (set at construction)

  // Mirror latency of responses: HTTP/1 from the first request byte written,
  // h2c from the stream's submission to nghttp2, until the response is complete.
  LatencyHistogram latency;

  std::atomic<uint64_t>& counterOf(Outcome outcome);

  uint64_t errors() const;
  uint64_t aborted() const;
  // Sum of all outcomes; equals `submitted` once the pool has stopped.
  uint64_t outcomes() const;
};

}  // namespace shadowtap::replay
