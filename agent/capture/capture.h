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

namespace shadowtap::capture {

// A destination address prefix narrowing a rule ("10.0.0.0/24", "2001:db8::/64",
// a plain address is a full-length prefix). Address in network byte order.
struct DestinationPrefix {
  uint8_t family = 4;  // 4 or 6
  std::array<uint8_t, 16> addr{};
  uint8_t length = 0;  // prefix length in bits
  bool operator==(const DestinationPrefix&) const = default;
};

// Parses "ADDR" or "ADDR/LEN" for IPv4 or IPv6. nullopt and *error set (one
// sentence quoting the text) when it is not one.
std::optional<DestinationPrefix> parseDestinationPrefix(std::string_view text, std::string* error);

// A port to capture, with its rule id (carried in every record) and the share
// of connections to mirror, in basis points (10000 = 100 %), optionally only for
// destinations inside a prefix.
struct PortRule {
  uint16_t port = 0;
  uint32_t ruleId = 0;
  uint32_t sampleBp = 10000;
  std::optional<DestinationPrefix> destination;
};

enum class AttachMode {
  kAuto,  // tcx where the kernel has it, else tc (cls_bpf)
  kTc,    // clsact + cls_bpf, our own handle and priority
  kTcx,   // BPF link on the tcx ingress hook (kernel 6.6+)
  kXdp,   // XDP through libxdp's dispatcher
};

struct CaptureOptions {
  std::vector<std::string> interfaces;  // names or patterns ("veth*")
  std::vector<PortRule> rules;
  AttachMode attach = AttachMode::kTc;
  uint32_t ringBufferBytes = 16u << 20;  // power of two, >= page size
  uint32_t tcHandle = 0x5354;            // "ST"
  uint32_t tcPriority = 1;
  uint32_t hashSeed = 0;  // seed of the per-connection sampling hash
};

// Kernel-side counters summed over CPUs, indexed by st_counter.
struct KernelCounters {
  std::array<uint64_t, 12> values{};
  uint64_t operator[](size_t i) const { return values[i]; }
};

// Agent-side counters of the ring buffer consumer.
struct CaptureStats {
  std::atomic<uint64_t> records{0};
  std::atomic<uint64_t> badRecords{0};  // too short, wrong ABI version, inconsistent lengths
  std::atomic<uint64_t> payloadBytes{0};
};

class SegmentSink {
 public:
  virtual ~SegmentSink() = default;
  virtual void onSegment(const flow::Segment& segment) = 0;
};

// Owns the loaded kernel program, its tc filters and the ring buffer consumer.
// The only code that talks to libbpf; errors come out as sentences.
class Capture {
 public:
  // Loads the program, fills the rule map and attaches to every interface.
  // On failure returns nullptr and sets *error to one line saying what to do.
  static std::unique_ptr<Capture> open(const CaptureOptions& options, std::string* error);
  ~Capture();

  Capture(const Capture&) = delete;
  Capture& operator=(const Capture&) = delete;

  // File descriptor that becomes readable when records are waiting (for epoll).
  int fd() const;

  // Delivers every waiting record to `sink`; returns the number consumed.
  int consume(SegmentSink& sink);

  KernelCounters kernelCounters() const;
  const CaptureStats& stats() const { return stats_; }
  const std::vector<std::string>& attachedInterfaces() const { return attachedNames_; }

  // Removes our filters now (also done by the destructor).
  void detach();

 private:
  struct Impl;
  explicit Capture(std::unique_ptr<Impl> impl);
  static int onRecord(void* ctx, void* data, size_t size);

  std::unique_ptr<Impl> impl_;
  std::vector<std::string> attachedNames_;
  CaptureStats stats_;
  SegmentSink* sink_ = nullptr;
};

}  // namespace shadowtap::capture
