#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "flow/segment.h"
#include "model/destination_prefix.h"
#include "shadowtap/capture_abi.h"

namespace shadowtap::capture {

// A port to capture, with its rule id (carried in every record) and the share
// of connections to mirror, in basis points (10000 = 100 %), optionally only for
// destinations inside a prefix. Several rules may share a port: for a segment the
// rule with the longest matching destination prefix wins, and the port's rule
// without a destination (at most one per port) is the fallback. Rule ids must be
// non-zero. `compare`: also capture the rule's responses (segments FROM the port
// and destination, of the same sampled connections), delivered with
// Segment::fromServer set; egress hooks are attached only while some rule compares.
struct PortRule {
  uint16_t port = 0;
  uint32_t ruleId = 0;
  uint32_t sampleBp = 10000;
  std::optional<model::DestinationPrefix> destination;
  bool compare = false;
};

enum class AttachMode {
  kAuto,  // tcx where the kernel has it, else tc (cls_bpf)
  kTc,    // clsact + cls_bpf, our own handle and priority
  kTcx,   // BPF link on the tcx ingress hook (kernel 6.6+)
  kXdp,   // XDP through libxdp's dispatcher
};

// "auto", "tc", "tcx", "xdp" <-> AttachMode. nullopt for anything else.
std::optional<AttachMode> parseAttachMode(std::string_view text);
const char* attachModeName(AttachMode mode);

struct CaptureOptions {
  // Interface names or fnmatch(3) patterns ("veth*", "cali*"). Every interface
  // matching one is attached at start and when it appears later; a plain name
  // (no *?[) must exist at start.
  std::vector<std::string> interfaces;
  std::vector<PortRule> rules;
  AttachMode attach = AttachMode::kAuto;
  uint32_t ringBufferBytes = 16u << 20;  // power of two, >= page size
  uint32_t tcHandle = 0x5354;            // "ST"; tc mode only
  uint32_t tcPriority = 1;               // tc mode only
  // tc mode: where the slot locks live (SlotLock), shared by the instances of a
  // host; empty: none, so a filter of ours is always taken for a leftover.
  std::string stateDir;
  uint32_t hashSeed = 0;                 // seed of the per-connection sampling hash
  // Adaptive wakeups: the kernel wakes the agent only once wakeupBytes are
  // waiting (0: ringBufferBytes / 8); otherwise the agent polls every
  // pollIntervalUs while records flow, backing off to idlePollIntervalUs when
  // the ring is quiet. false: the kernel's default wakeup on every record
  // committed while the agent is caught up.
  bool adaptiveWakeups = true;
  uint32_t wakeupBytes = 0;
  uint32_t pollIntervalUs = 2000;
  uint32_t idlePollIntervalUs = 50000;
};

// Kernel-side counters summed over CPUs, indexed by st_counter.
struct KernelCounters {
  std::array<uint64_t, ST_CNT_MAX> values{};
  uint64_t operator[](size_t i) const { return values[i]; }
};

// Agent-side counters of the ring buffer consumer and the interface tracking.
struct CaptureStats {
  std::atomic<uint64_t> records{0};
  std::atomic<uint64_t> badRecords{0};  // too short, wrong ABI version, inconsistent lengths
  std::atomic<uint64_t> payloadBytes{0};
  std::atomic<uint64_t> polls{0};          // consume() calls
  std::atomic<uint64_t> emptyPolls{0};     // consume() calls that found no record
  std::atomic<uint64_t> attaches{0};       // interfaces attached (at start and later)
  std::atomic<uint64_t> forgotten{0};      // interfaces gone, renamed away or detached
  std::atomic<uint64_t> attachErrors{0};   // matching interfaces we could not attach to
  std::atomic<uint64_t> staleRemoved{0};   // leftovers of earlier runs removed
  std::atomic<uint64_t> linkRescans{0};    // full rescans after lost link notifications
  // XDP mode: interfaces where libxdp attached our program without its
  // dispatcher, so other XDP programs cannot run there (logged as a warning).
  std::atomic<uint64_t> xdpWithoutDispatcher{0};
  // Compare mode: records of the egress (response) direction, of `records`, and
  // egress hooks attached (an interface counts once per time its hook is attached).
  std::atomic<uint64_t> fromServerRecords{0};
  std::atomic<uint64_t> egressAttaches{0};
};

class SegmentSink {
 public:
  virtual ~SegmentSink() = default;
  virtual void onSegment(const flow::Segment& segment) = 0;
};

// Owns the loaded kernel program, its attachments (tc filters, tcx links or XDP
// programs) and the ring buffer consumer, and follows interfaces matching the
// options' patterns as they come and go. The only code that talks to libbpf and
// libxdp; errors come out as sentences.
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
  explicit Capture(std::unique_ptr<Impl> impl);
  static int onRecord(void* ctx, void* data, size_t size);
  void followInterfaces();
  void forget(int ifindex, bool gone);
  void refreshNames();
  std::string attachInterface(int ifindex, const std::string& name);
  std::string attachEgress(int ifindex, const std::string& name);

  std::unique_ptr<Impl> impl_;
  std::vector<std::string> attachedNames_;
  CaptureStats stats_;
  SegmentSink* sink_ = nullptr;
};

}  // namespace shadowtap::capture
