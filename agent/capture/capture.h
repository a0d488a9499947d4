#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "capture/attach_mode.h"
#include "capture/capture_options.h"
#include "capture/capture_stats.h"
#include "capture/kernel_counters.h"
#include "capture/port_rule.h"
#include "capture/segment_source.h"
#include "capture/ring_reader.h"
#include "capture/segment_sink.h"

namespace shadowtap::capture {

// The capture as the pipeline sees it: loads the kernel programs, fills their
// rule maps, attaches them (tc filters, tcx links or XDP programs) to every
// interface matching the options' patterns as interfaces come and go, and
// delivers the ring buffer's records as Segments. The only code that talks to
// libbpf and libxdp; errors come out as sentences. The parts, one job each:
// LoadedProgram (loader.h), RuleMapSync, AttachedInterfaces and Attachment,
// InterfaceWatcher, RingReader.
class Capture final : public SegmentSource {
 public:
  // Loads the program, fills the rule map and attaches to every interface.
  // On failure returns nullptr and sets *error to one line saying what to do.
  static std::unique_ptr<Capture> open(const CaptureOptions& options, std::string* error);
  ~Capture() override;

  Capture(const Capture&) = delete;
  Capture& operator=(const Capture&) = delete;

  // File descriptor that becomes readable when consume() has work: records
  // waiting, a poll tick, or interface notifications (an epoll fd of our own).
  int fd() const;

  // Handles interface notifications (attach/forget), then delivers the waiting
  // records of every worker's ring (up to RingReader::kConsumeBudget a ring),
  // of both directions (Segment::fromServer), to `sink`; returns the number of
  // records consumed, or the first ring's error (addConsumed). For one thread
  // that does everything; with worker threads, use followInterfaces() and ring(i).
  int consume(SegmentSink& sink);

  // Workers: one ring buffer each; the kernel sends both directions of a
  // connection to the same one (CaptureOptions::workers). A worker thread owns
  // ring(i): it waits on its ringFd() and timerFd() and calls its consume().
  uint32_t workers() const;
  RingReader& ring(uint32_t worker);
  WorkerFeed& feed(uint32_t worker) override;
  // Readable on interface notifications; followInterfaces() handles them
  // (attach or forget) and says whether the attached set changed.
  int interfacesFd() const override;
  bool followInterfaces() override;

  // The attach mode in use (kAuto resolved).
  AttachMode attachMode() const;
  // Whether egress hooks (compare mode) are attached, and how: kTc or kTcx (XDP
  // has no egress hook, so XDP mode uses tcx or tc there).
  bool egressAttached() const;
  AttachMode egressMode() const;

  // Replaces the installed rules (SIGHUP reload) without detaching: entries of
  // rules kept stay in place throughout. Egress hooks are attached when the new
  // set is the first to compare and removed when it no longer does. Empty on
  // success, else why the new set was refused (the old one then stays).
  std::string updateRules(const std::vector<PortRule>& rules) override;

  KernelCounters kernelCounters() const;
  // --tls: the libssl file the uprobes are on (empty without --tls or after detach()).
  std::string tlsLibrary() const override;
  const CaptureStats& stats() const { return stats_; }
  // A copy: the interfaces' thread may change the set meanwhile.
  std::vector<std::string> attachedInterfaces() const override;
  void exportStats(bool egress, base::StatsSink& out) const override;

  // Removes our filters/links/programs now and stops following interfaces (also
  // done by the destructor). Records already in the ring stay consumable.
  void detach() override;

 private:
  struct Impl;
  Capture();
  std::string start(const CaptureOptions& options);
  std::string listen(const CaptureOptions& options);

  // Declared first: the parts in impl_ count into it until they are gone.
  CaptureStats stats_;
  mutable std::mutex namesMutex_;
  std::vector<std::string> attachedNames_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shadowtap::capture
