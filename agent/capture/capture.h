#pragma once

#include <memory>
#include <string>
#include <vector>

#include "capture/attach_mode.h"
#include "capture/capture_options.h"
#include "capture/capture_stats.h"
#include "capture/kernel_counters.h"
#include "capture/port_rule.h"
#include "capture/segment_sink.h"

namespace shadowtap::capture {

// The capture as the pipeline sees it: loads the kernel programs, fills their
// rule maps, attaches them (tc filters, tcx links or XDP programs) to every
// interface matching the options' patterns as interfaces come and go, and
// delivers the ring buffer's records as Segments. The only code that talks to
// libbpf and libxdp; errors come out as sentences. The parts, one job each:
// LoadedProgram (loader.h), RuleMapSync, AttachedInterfaces and Attachment,
// InterfaceWatcher, RingReader.
class Capture {
 public:
  // Loads the program, fills the rule map and attaches to every interface.
  // On failure returns nullptr and sets *error to one line saying what to do.
  static std::unique_ptr<Capture> open(const CaptureOptions& options, std::string* error);
  ~Capture();

  Capture(const Capture&) = delete;
  Capture& operator=(const Capture&) = delete;

  // File descriptor that becomes readable when consume() has work: records
  // waiting, a poll tick, or interface notifications (an epoll fd of our own).
  int fd() const;

  // Handles interface notifications (attach/forget), then delivers every waiting
  // record, of both directions (Segment::fromServer), to `sink`; returns the
  // number of records consumed.
  int consume(SegmentSink& sink);

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
  std::string updateRules(const std::vector<PortRule>& rules);

  KernelCounters kernelCounters() const;
  const CaptureStats& stats() const { return stats_; }
  const std::vector<std::string>& attachedInterfaces() const { return attachedNames_; }

  // Removes our filters/links/programs now and stops following interfaces (also
  // done by the destructor). Records already in the ring stay consumable.
  void detach();

 private:
  struct Impl;
  Capture();
  std::string start(const CaptureOptions& options);
  std::string listen(const CaptureOptions& options);

  // Declared first: the parts in impl_ count into it until they are gone.
  CaptureStats stats_;
  std::vector<std::string> attachedNames_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shadowtap::capture
