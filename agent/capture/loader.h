#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "capture/capture_options.h"
#include "capture/kernel_counters.h"
#include "capture/xdp_attachment.h"

struct capture_tc;

namespace shadowtap::capture {

// Empty when `bytes` can size the ring buffer (a power of two, at least a
// page), else one line saying so. Checked before anything is loaded.
std::string checkRingBufferSize(uint32_t bytes);

// The capture programs loaded into the kernel (the capture_tc skeleton: the
// tc/tcx ingress and egress programs and the maps every attach mode shares),
// unloaded on destruction; what is attached must go first.
class LoadedProgram {
 public:
  // Opens the object, sets what goes in before load (hash seed, wakeup
  // threshold, ring buffer size), checks that the kernel has what the programs
  // need (missingKernelSupport) and loads them. nullptr and *error set (one
  // line saying what to do) on failure.
  static std::unique_ptr<LoadedProgram> load(const CaptureOptions& options, std::string* error);
  ~LoadedProgram();
  LoadedProgram(const LoadedProgram&) = delete;
  LoadedProgram& operator=(const LoadedProgram&) = delete;

  int ingressProgFd() const;
  int egressProgFd() const;
  int rulesFd() const;
  int prefixRulesFd() const;
  int eventsFd() const;
  // What an XDP attachment shares with these programs: maps and settings.
  XdpShared xdpShared() const;
  // The programs' counters, summed over CPUs.
  KernelCounters counters() const;

 private:
  LoadedProgram() = default;

  capture_tc* skel_ = nullptr;
  int ncpus_ = 1;
};

}  // namespace shadowtap::capture
