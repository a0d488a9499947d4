#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/fd.h"

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
  // Worker i's ring buffer (worker 0's is eventsFd()).
  int ringFd(uint32_t worker) const;
  uint32_t workers() const { return static_cast<uint32_t>(extraRings_.size()) + 1; }
  // What an XDP attachment (and the TLS programs) share with these programs: maps and settings.
  XdpShared xdpShared() const;
  // The programs' counters, summed over CPUs.
  KernelCounters counters() const;

 private:
  LoadedProgram() = default;

  // Puts a ring buffer of `bytes` for every worker after the first into
  // st_rings. Empty on success.
  std::string addWorkerRings(uint32_t workers, uint32_t bytes);

  capture_tc* skel_ = nullptr;
  std::vector<base::Fd> extraRings_;  // workers 1..N-1
  int ncpus_ = 1;
};

}  // namespace shadowtap::capture
