#include "capture/loader.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <bit>
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

// The largest record the programs reserve (st_emit_record: the header and the
// largest payload class) with the ring's own record header, rounded up to 8
// bytes as the kernel does. bpf_ringbuf_reserve refuses it in a smaller ring.
constexpr uint32_t kLargestRecordBytes = (sizeof(st_segment) + ST_CLASS_3 + BPF_RINGBUF_HDR_SZ + 7) / 8 * 8;
static_assert(kLargestRecordBytes == 65624);
static_assert(kMinRingBytesPerWorker == std::bit_ceil(kLargestRecordBytes),
              "a worker's ring: the smallest power of two that holds the largest record");

std::string sizeText(uint64_t bytes) {
  return bytes >= (1u << 20) && bytes % (1u << 20) == 0 ? std::to_string(bytes >> 20) + " MiB"
                                                          : std::to_string(bytes >> 10) + " KiB";
}

std::string badRingBufferSize(uint32_t bytes) {
  return "invalid ring buffer size " + std::to_string(bytes) + " (must be a power of two of at least 4096 bytes)";
}

}  // namespace

std::string checkRingBufferSize(uint32_t bytes) {
  return bytes < 4096 || (bytes & (bytes - 1)) != 0 ? badRingBufferSize(bytes) : "";
}

uint32_t ringBytesPerWorker(uint32_t ringBufferBytes, uint32_t workers) {
  const uint32_t share = ringBufferBytes / std::max<uint32_t>(workers, 1);
  uint32_t bytes = 4096;
  while (bytes * 2 <= share && bytes * 2 != 0) {
    bytes *= 2;
  }
  return bytes;
}

std::string checkRingShare(uint32_t ringBufferBytes, uint32_t workers) {
  workers = std::max<uint32_t>(workers, 1);
  const uint32_t ring = ringBytesPerWorker(ringBufferBytes, workers);
  if (ring >= kMinRingBytesPerWorker) {
    return "";
  }
  // --ring-buffer-mib is a power of two; the most workers the given one carries.
  const uint64_t neededMiB = std::max<uint64_t>(std::bit_ceil(uint64_t{workers} * kMinRingBytesPerWorker) >> 20, 1);
  const uint32_t mostWorkers = ringBufferBytes / kMinRingBytesPerWorker;
  std::string why = "a ring buffer of " + sizeText(ringBufferBytes) + " (--ring-buffer-mib) shared by " +
                    std::to_string(workers) + " workers (--workers) gives each a " + sizeText(ring) +
                    " ring, too small for the largest record (" + std::to_string(kLargestRecordBytes) +
                    " bytes, a segment's 64 KiB chunk): each worker's ring must be at least " +
                    sizeText(kMinRingBytesPerWorker) + "; raise --ring-buffer-mib to " + std::to_string(neededMiB);
  if (mostWorkers >= 1) {
    why += " or lower --workers to " + std::to_string(mostWorkers);
  }
  return why;
}

std::unique_ptr<LoadedProgram> LoadedProgram::load(const CaptureOptions& options, std::string* error) {
  auto program = std::unique_ptr<LoadedProgram>(new LoadedProgram());
  capture_tc* skel = program->skel_ = capture_tc__open();
  if (!skel) {
    const int err = -errno;
    *error = std::string("cannot open the BPF program: ") + std::strerror(-err) + privilegeHint(err);
    return nullptr;
  }
  if (options.workers < 1 || options.workers > ST_MAX_WORKERS) {
    *error = "invalid number of workers " + std::to_string(options.workers) + " (1 to " +
             std::to_string(ST_MAX_WORKERS) + ")";
    return nullptr;
  }
  if (std::string why = checkRingShare(options.ringBufferBytes, options.workers); !why.empty()) {
    *error = why;
    return nullptr;
  }
  const uint32_t ringBytes = ringBytesPerWorker(options.ringBufferBytes, options.workers);
  skel->rodata->st_hash_seed = options.hashSeed;
  skel->rodata->st_workers = options.workers;
  if (options.adaptiveWakeups) {
    skel->rodata->st_wakeup_bytes = options.wakeupBytes != 0 ? std::min<uint64_t>(options.wakeupBytes, ringBytes / 2)
                                                             : ringBytes / 8;
  }
  if (bpf_map__set_max_entries(skel->maps.st_events, ringBytes) != 0) {
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
  if (std::string why = program->addWorkerRings(options.workers, ringBytes); !why.empty()) {
    *error = why;
    return nullptr;
  }
  program->ncpus_ = libbpf_num_possible_cpus();
  if (program->ncpus_ <= 0) {
    *error = "cannot count the possible CPUs (/sys/devices/system/cpu/possible)";
    return nullptr;
  }
  return program;
}

std::string LoadedProgram::addWorkerRings(uint32_t workers, uint32_t bytes) {
  const int rings = bpf_map__fd(skel_->maps.st_rings);
  for (uint32_t worker = 1; worker < workers; ++worker) {
    const std::string name = "st_ring_" + std::to_string(worker);
    base::Fd ring(bpf_map_create(BPF_MAP_TYPE_RINGBUF, name.c_str(), 0, 0, bytes, nullptr));
    if (!ring.valid()) {
      const int err = -errno;
      return "cannot create the ring buffer of worker " + std::to_string(worker) + " (" + std::to_string(bytes) +
             " bytes): " + std::strerror(-err) + privilegeHint(err);
    }
    const int fd = ring.get();
    if (bpf_map_update_elem(rings, &worker, &fd, BPF_ANY) != 0) {
      return "cannot give worker " + std::to_string(worker) + " its ring buffer: " + std::strerror(errno) +
             " (this kernel may not allow ring buffers of different sizes in one map; 5.10 and later do)";
    }
    extraRings_.push_back(std::move(ring));
  }
  return "";
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
int LoadedProgram::ringFd(uint32_t worker) const {
  return worker == 0 ? eventsFd() : extraRings_.at(worker - 1).get();
}

XdpShared LoadedProgram::xdpShared() const {
  XdpShared shared;
  shared.rulesFd = rulesFd();
  shared.prefixRulesFd = prefixRulesFd();
  shared.eventsFd = eventsFd();
  shared.ringsFd = bpf_map__fd(skel_->maps.st_rings);
  shared.workers = skel_->rodata->st_workers;
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
