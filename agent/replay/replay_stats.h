#pragma once

#include <array>
#include <atomic>
#include <cstdint>

#include "base/latency_histogram.h"

namespace shadowtap::replay {

using base::LatencyHistogram;

// Counters of the replay stage; written by the capture thread (submit) and the
// replay loop, read by anyone (relaxed). Every submitted job ends in exactly
// one outcome, so after Replayer::stop():
//   submitted == responses + errors() + queueFull + droppedOldest + droppedRateLimit + droppedShutdown
struct ReplayStats {
  // Jobs offered to submit(), including the ones it dropped.
  std::atomic<uint64_t> submitted{0};

  // Outcomes.
  std::atomic<uint64_t> queueFull{0};        // dropped by submit: queue at capacity (jobs or bytes)
  std::atomic<uint64_t> droppedOldest{0};    // drop policy oldest: pushed out of the full queue by newer jobs
  std::atomic<uint64_t> droppedRateLimit{0}; // dropped by submit: beyond max-rps
  std::atomic<uint64_t> responses{0};        // final response read (any status); split by class below
  std::atomic<uint64_t> errorsConnect{0};    // connect refused/unreachable/failed; the job rode on that connect
  std::atomic<uint64_t> errorsConnectTimeout{0};
  std::atomic<uint64_t> errorsReset{0};      // peer closed or reset before the response was complete
  std::atomic<uint64_t> errorsResponseTimeout{0};
  std::atomic<uint64_t> errorsBadResponse{0};       // response not parseable as HTTP/1.x
  std::atomic<uint64_t> errorsResponseTooLarge{0};  // response beyond maxResponseBytes; connection closed
  std::atomic<uint64_t> droppedShutdown{0};  // still queued or in flight when stop()'s drain ran out,
                                             // or submitted after stop()

  // Final responses by status class (101 counts as 1xx; interim 1xx are skipped).
  std::atomic<uint64_t> responses1xx{0};
  std::atomic<uint64_t> responses2xx{0};
  std::atomic<uint64_t> responses3xx{0};
  std::atomic<uint64_t> responses4xx{0};
  std::atomic<uint64_t> responses5xx{0};
  std::atomic<uint64_t> responsesOther{0};  // status outside 100-599

  // Activity.
  std::atomic<uint64_t> sent{0};               // requests written completely
  std::atomic<uint64_t> bytesSent{0};
  std::atomic<uint64_t> bytesReceived{0};
  std::atomic<uint64_t> connectAttempts{0};
  std::atomic<uint64_t> connectionsOpened{0};  // connects that succeeded
  std::atomic<uint64_t> connectionsClosed{0};  // established connections closed, for any reason
  std::atomic<uint64_t> wakeups{0};            // eventfd writes by submit
  std::atomic<uint64_t> resolves{0};           // re-resolutions of the target's name
  std::atomic<uint64_t> resolveErrors{0};      // ... that failed (the last addresses stay in use)
  std::atomic<uint64_t> addressChanges{0};     // ... that changed the address list

  // Compare mode: jobs with an exchange id end in exactly one of these.
  std::atomic<uint64_t> keptResponses{0};    // response framed and handed to onKeptResponse
  std::atomic<uint64_t> missingResponses{0}; // reported to onMissingResponse

  // Gauges.
  std::atomic<int64_t> queueDepth{0};
  std::atomic<int64_t> queueBytes{0};
  std::atomic<int64_t> inFlight{0};            // jobs taken from the queue without an outcome yet
  std::atomic<int64_t> openConnections{0};     // connecting or established

  // Mirror latency of responses (first request byte written to the response
  // complete), in fixed buckets for a Prometheus histogram.
  LatencyHistogram latency;

  uint64_t errors() const {
    return errorsConnect.load(std::memory_order_relaxed) + errorsConnectTimeout.load(std::memory_order_relaxed) +
           errorsReset.load(std::memory_order_relaxed) + errorsResponseTimeout.load(std::memory_order_relaxed) +
           errorsBadResponse.load(std::memory_order_relaxed) +
           errorsResponseTooLarge.load(std::memory_order_relaxed);
  }

  // Sum of all outcomes; equals `submitted` once the replayer has stopped.
  uint64_t outcomes() const {
    return queueFull.load(std::memory_order_relaxed) + droppedOldest.load(std::memory_order_relaxed) +
           droppedRateLimit.load(std::memory_order_relaxed) + responses.load(std::memory_order_relaxed) + errors() +
           droppedShutdown.load(std::memory_order_relaxed);
  }
};

}  // namespace shadowtap::replay
