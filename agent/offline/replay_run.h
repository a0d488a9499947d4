#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/request.h"
#include "offline/pacer.h"
#include "record/recorded_request.h"
#include "replay/mirror_sink.h"

namespace shadowtap::offline {

// Which recorded requests a replay sends.
struct RequestFilter {
  std::vector<std::string> methods;       // upper case; empty: all
  std::vector<std::string> pathPrefixes;  // empty: all
  bool matches(const record::RecordedRequest& r) const;
};

// The request-target's path ("/a/b" of "/a/b?x" or of "http://h/a/b?x").
std::string_view targetPath(std::string_view target);

struct ReplayPlan {
  std::vector<record::RecordedRequest> requests;  // in sending order
  double speed = 1.0;    // 1: original pacing; 0: as fast as allowed
  uint32_t maxRps = 0;   // 0: unlimited
  uint64_t passes = 1;   // 0: until stopped
  std::string suffix = "-shadow";
};

// Progress of a run; written by the sending thread, read by anyone.
struct RunCounters {
  std::atomic<uint64_t> submitted{0};    // requests offered to a sink (HTTP/1 and HTTP/2)
  std::atomic<uint64_t> refused{0};      // ... that the sink dropped (counted there by reason), or HTTP/2
                                         // requests with no HTTP/2 sink
  std::atomic<uint64_t> h2Submitted{0};  // of `submitted`, HTTP/2 requests
  std::atomic<uint64_t> passes{0};       // passes completed
};

// Sends the plan's HTTP/1 requests to `sink`, rebuilt with buildRequestBytes
// (Host gets the suffix), and its HTTP/2 requests to `h2Sink`, rebuilt with
// record::buildH2Request (:authority gets the suffix; nullptr: they are
// counted as refused), one sequence in plan order paced by a Pacer over
// `clock`. With speed 0 it waits while
// `busy()` says the sink is saturated, so an as-fast-as-allowed replay is
// bounded by the pool instead of overflowing the queue; with speed > 0 it
// keeps the recorded pacing and the sink's queue limit drops what the target
// cannot take (as in live mirroring). `tick` is called at least every
// `tickNs` while waiting and after each request (for progress output).
// Returns when every pass is done or `stop` is set.
void runPlan(const ReplayPlan& plan, replay::MirrorSink& sink, replay::MirrorSink* h2Sink, Clock& clock,
             const std::atomic<bool>& stop, const std::function<bool()>& busy, const std::function<void()>& tick,
             RunCounters& counters, uint64_t tickNs = 100'000'000);
// HTTP/1 only (HTTP/2 requests are refused).
void runPlan(const ReplayPlan& plan, replay::MirrorSink& sink, Clock& clock, const std::atomic<bool>& stop,
             const std::function<bool()>& busy, const std::function<void()>& tick, RunCounters& counters,
             uint64_t tickNs = 100'000'000);

}  // namespace shadowtap::offline
