#include "capture/loader.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "capture/kernel_support.h"
#include "capture/libbpf_log.h"
#include "capture_tc.skel.h"
#include "shadowtap/capture_abi.h"

namespace shadowtap::capture {
namespace {

std::string privilegeHint(int err) {
  if (err == -EPERM || err == -EACCES) {
    return " (run as root, or with CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON)";
  }
  return "";
}

std::string badRingBufferSize(uint32_t bytes) {
  return "invalid ring buffer size " + std::to_string(bytes) + " (must be a power of two of at least 4096 bytes)";
}

}  // namespace

std::string checkRingBufferSize(uint32_t bytes) {
  return bytes < 4096 || (bytes & (bytes - 1)) != 0 ? badRingBufferSize(bytes) : "";
}

std::unique_ptr<LoadedProgram> LoadedProgram::load(const CaptureOptions& options, std::string* error) {
  auto program = std::unique_ptr<LoadedProgram>(new LoadedProgram());
  capture_tc* skel = program->skel_ = capture_tc__open();
  if (!skel) {
    const int err = -errno;
    *error = std::string("cannot open the BPF program: ") + std::strerror(-err) + privilegeHint(err);
    return nullptr;
  }
  skel->rodata->st_hash_seed = options.hashSeed;
  if (options.adaptiveWakeups) {
    skel->rodata->st_wakeup_bytes = options.wakeupBytes != 0 ? options.wakeupBytes : options.ringBufferBytes / 8;
  }
  if (bpf_map__set_max_entries(skel->maps.st_events, options.ringBufferBytes) != 0) {
    *error = badRingBufferSize(options.ringBufferBytes);
    return nullptr;
  }
  if (std::string missing = missingKernelSupport(options.attach == AttachMode::kXdp); !missing.empty()) {
    *error = missing;
    return nullptr;
  }
  clearVerifierLog();
  if (const int err = capture_tc__load(skel); err != 0) {
    *error = describeLoadFailure("the capture program", err);
    return nullptr;
  }
  program->ncpus_ = libbpf_num_possible_cpus();
  if (program->ncpus_ <= 0) {
    *error = "cannot count the possible CPUs (/sys/devices/system/cpu/possible)";
    return nullptr;
  }
  return program;
}

LoadedProgram::~LoadedProgram() {
  if (skel_) {
    capture_tc__destroy(skel_);
  }
}

int LoadedProgram::ingressProgFd() const { return bpf_program__fd(skel_->progs.st_capture_tc); }
int LoadedProgram::egressProgFd() const { return bpf_program__fd(skel_->progs.st_capture_egr); }
int LoadedProgram::rulesFd() const { return bpf_map__fd(skel_->maps.st_rules); }
int LoadedProgram::prefixRulesFd() const { return bpf_map__fd(skel_->maps.st_prefix_rules); }
int LoadedProgram::eventsFd() const { return bpf_map__fd(skel_->maps.st_events); }

XdpShared LoadedProgram::xdpShared() const {
  XdpShared shared;
  shared.rulesFd = rulesFd();
  shared.prefixRulesFd = prefixRulesFd();
  shared.eventsFd = eventsFd();
  shared.countersFd = bpf_map__fd(skel_->maps.st_counters);
  shared.hashSeed = skel_->rodata->st_hash_seed;
  shared.wakeupBytes = skel_->rodata->st_wakeup_bytes;
  return shared;
}

KernelCounters LoadedProgram::counters() const {
  std::vector<uint64_t> sums(ST_CNT_MAX);
  std::vector<uint64_t> percpu(static_cast<size_t>(ncpus_));
  const int fd = bpf_map__fd(skel_->maps.st_counters);
  for (uint32_t i = 0; i < ST_CNT_MAX; ++i) {
    if (bpf_map_lookup_elem(fd, &i, percpu.data()) == 0) {
      for (uint64_t v : percpu) {
        sums[i] += v;
      }
    }
  }
  return nameKernelCounters(sums.data(), sums.size());
}

}  // namespace shadowtap::capture
