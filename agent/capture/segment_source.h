#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "base/stats_sink.h"
#include "capture/port_rule.h"
#include "capture/segment_sink.h"

namespace shadowtap::capture {

// One worker's input: descriptors that become readable when consume() has
// work, and consume(), which hands every waiting segment to a sink. The ring
// reader is one (a worker's ring buffer and its poll timer); a test's or a
// benchmark's synthetic feed is another.
class WorkerFeed {
 public:
  virtual ~WorkerFeed() = default;
  virtual std::vector<int> readableFds() const = 0;
  // Segments delivered (negative: the source's error).
  virtual int consume(SegmentSink& sink) = 0;
};

// Where the pipeline's segments come from: the kernel capture (Capture), or a
// synthetic source that drives the real pipeline without BPF or root
// (tests/pipeline, pipeline_bench). The pipeline uses nothing else of it.
class SegmentSource {
 public:
  virtual ~SegmentSource() = default;
  // Worker i's input; the kernel sends both directions of a connection to one.
  virtual WorkerFeed& feed(uint32_t worker) = 0;
  // Readable on interface notifications (-1: none); followInterfaces() handles
  // them and says whether the attached set changed.
  virtual int interfacesFd() const { return -1; }
  virtual bool followInterfaces() { return false; }
  virtual std::vector<std::string> attachedInterfaces() const = 0;
  // A reload's rules: empty on success, else why they were refused.
  virtual std::string updateRules(const std::vector<PortRule>& rules) = 0;
  // Stops producing; what is already queued stays consumable. Idempotent.
  virtual void detach() = 0;
  // --tls: the probed libssl (empty when none).
  virtual std::string tlsLibrary() const { return {}; }
  // The source's counters (the kernel's and the ring readers' for Capture).
  // `egress`: compare mode is on.
  virtual void exportStats(bool egress, base::StatsSink& out) const = 0;
};

}  // namespace shadowtap::capture
