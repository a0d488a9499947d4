#include "capture/capture.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <net/if.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "capture/abi_check.h"
#include "capture/tc_filter.h"
#include "capture_tc.skel.h"

namespace shadowtap::capture {
namespace {

std::string privilegeHint(int err) {
  if (err == -EPERM || err == -EACCES) {
    return " (run as root, or with CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON)";
  }
  return "";
}

}  // namespace

struct Capture::Impl {
  capture_tc* skel = nullptr;
  ring_buffer* ring = nullptr;
  std::vector<TcFilter> filters;
  int ncpus = 1;

  ~Impl() {
    filters.clear();  // detach before the program goes away
    if (ring) {
      ring_buffer__free(ring);
    }
    if (skel) {
      capture_tc__destroy(skel);
    }
  }
};

Capture::Capture(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Capture::~Capture() = default;

std::unique_ptr<Capture> Capture::open(const CaptureOptions& options, std::string* error) {
  auto impl = std::make_unique<Impl>();

  // Resolve interfaces first: a typo should not cost a program load.
  std::vector<std::pair<std::string, int>> ifaces;
  for (const auto& name : options.interfaces) {
    unsigned idx = if_nametoindex(name.c_str());
    if (idx == 0) {
      *error = "unknown interface '" + name + "' (see `ip link` for the interfaces of this host)";
      return nullptr;
    }
    ifaces.emplace_back(name, static_cast<int>(idx));
  }

  impl->skel = capture_tc__open();
  if (!impl->skel) {
    int err = -errno;
    *error = std::string("cannot open the BPF program: ") + std::strerror(-err) + privilegeHint(err);
    return nullptr;
  }
  impl->skel->rodata->st_hash_seed = options.hashSeed;
  int err = bpf_map__set_max_entries(impl->skel->maps.st_events, options.ringBufferBytes);
  if (err) {
    *error = "invalid ring buffer size " + std::to_string(options.ringBufferBytes) +
             " (must be a power of two of at least 4096 bytes)";
    return nullptr;
  }
  err = capture_tc__load(impl->skel);
  if (err) {
    *error = std::string("cannot load the BPF program into the kernel: ") + std::strerror(-err) +
             privilegeHint(err) + "; run with --log-level debug for the verifier log";
    return nullptr;
  }

  int rulesFd = bpf_map__fd(impl->skel->maps.st_rules);
  for (const auto& rule : options.rules) {
    uint32_t key = rule.port;
    st_rule value{rule.ruleId, rule.sampleBp};
    if (bpf_map_update_elem(rulesFd, &key, &value, BPF_ANY) != 0) {
      *error = std::string("cannot write the rule map: ") + std::strerror(errno);
      return nullptr;
    }
  }

  impl->ncpus = libbpf_num_possible_cpus();
  if (impl->ncpus <= 0) {
    *error = "cannot count the possible CPUs (/sys/devices/system/cpu/possible)";
    return nullptr;
  }

  auto capture = std::unique_ptr<Capture>(new Capture(std::move(impl)));
  Impl& im = *capture->impl_;
  im.ring = ring_buffer__new(bpf_map__fd(im.skel->maps.st_events), &Capture::onRecord,
                             capture.get(), nullptr);
  if (!im.ring) {
    *error = std::string("cannot open the ring buffer: ") + std::strerror(errno);
    return nullptr;
  }

  int progFd = bpf_program__fd(im.skel->progs.st_capture_tc);
  for (const auto& [name, idx] : ifaces) {
    TcFilter filter;
    bool replaced = false;
    std::string why = filter.attach(idx, name, progFd, options.tcHandle, options.tcPriority, &replaced);
    if (!why.empty()) {
      *error = why;
      return nullptr;  // filters attached so far are removed by their destructors
    }
    spdlog::info("attached to {} (tc ingress, cls_bpf handle 0x{:x} priority {}){}", name,
                 options.tcHandle, options.tcPriority,
                 replaced ? ", replacing a stale filter left by an earlier run" : "");
    im.filters.push_back(std::move(filter));
    capture->attachedNames_.push_back(name);
  }
  return capture;
}

int Capture::fd() const { return ring_buffer__epoll_fd(impl_->ring); }

int Capture::consume(SegmentSink& sink) {
  sink_ = &sink;
  int n = ring_buffer__consume(impl_->ring);
  sink_ = nullptr;
  return n;
}

int Capture::onRecord(void* ctx, void* data, size_t size) {
  auto* self = static_cast<Capture*>(ctx);
  self->stats_.records.fetch_add(1, std::memory_order_relaxed);
  if (size < sizeof(st_segment)) {
    self->stats_.badRecords.fetch_add(1, std::memory_order_relaxed);
    return 0;
  }
  const auto* rec = static_cast<const st_segment*>(data);
  if (rec->abi_version != SHADOWTAP_ABI_VERSION || rec->cap_len > size - sizeof(st_segment) ||
      (rec->family != ST_FAMILY_IPV4 && rec->family != ST_FAMILY_IPV6)) {
    self->stats_.badRecords.fetch_add(1, std::memory_order_relaxed);
    return 0;
  }
  flow::Segment seg;
  std::memcpy(seg.key.saddr.data(), rec->saddr, 16);
  std::memcpy(seg.key.daddr.data(), rec->daddr, 16);
  seg.key.sport = ntohs(rec->sport);
  seg.key.dport = ntohs(rec->dport);
  seg.key.family = rec->family;
  seg.seq = rec->seq;
  seg.ack = rec->ack;
  // Control flags belong to the segment, not to every chunk of it: SYN to the
  // first chunk, FIN to the last, so that reassembly sees them in sequence.
  bool first = rec->chunk_offset == 0;
  bool last = rec->chunk_offset + rec->cap_len >= rec->payload_len;
  seg.flags = rec->tcp_flags;
  if (!first) {
    seg.flags &= ~flow::kTcpSyn;
  }
  if (!last) {
    seg.flags &= ~(flow::kTcpFin | flow::kTcpRst);
  }
  seg.ruleId = rec->rule_id;
  seg.tsNs = rec->ts_ns;
  seg.ifindex = rec->ifindex;
  seg.payload = {reinterpret_cast<const uint8_t*>(rec + 1), rec->cap_len};
  self->stats_.payloadBytes.fetch_add(rec->cap_len, std::memory_order_relaxed);
  if (self->sink_) {
    self->sink_->onSegment(seg);
  }
  return 0;
}

KernelCounters Capture::kernelCounters() const {
  KernelCounters out;
  int fd = bpf_map__fd(impl_->skel->maps.st_counters);
  std::vector<uint64_t> percpu(static_cast<size_t>(impl_->ncpus));
  for (uint32_t i = 0; i < ST_CNT_MAX; ++i) {
    if (bpf_map_lookup_elem(fd, &i, percpu.data()) == 0) {
      uint64_t sum = 0;
      for (uint64_t v : percpu) {
        sum += v;
      }
      out.values[i] = sum;
    }
  }
  return out;
}

void Capture::detach() { impl_->filters.clear(); }

}  // namespace shadowtap::capture
