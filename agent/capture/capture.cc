#include "capture/capture.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fnmatch.h>
#include <net/if.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <set>

#include "capture/abi_check.h"
#include "capture/kernel_support.h"
#include "capture/libbpf_log.h"
#include "capture/netlink.h"
#include "capture/tc_filter.h"
#include "capture/tcx_link.h"
#include "capture/xdp_attachment.h"
#include "capture_tc.skel.h"

namespace shadowtap::capture {
namespace {

std::string privilegeHint(int err) {
  if (err == -EPERM || err == -EACCES) {
    return " (run as root, or with CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON)";
  }
  return "";
}

bool isPattern(const std::string& s) { return s.find_first_of("*?[") != std::string::npos; }

// Interfaces of this network namespace, by ifindex.
std::map<int, std::string> currentInterfaces() {
  std::map<int, std::string> out;
  struct if_nameindex* list = if_nameindex();
  if (!list) {
    return out;
  }
  for (struct if_nameindex* i = list; i->if_index != 0; ++i) {
    out[static_cast<int>(i->if_index)] = i->if_name;
  }
  if_freenameindex(list);
  return out;
}

st_prefix_key prefixKey(const PortRule& r) {
  const model::DestinationPrefix& d = *r.destination;
  st_prefix_key key{};
  key.prefixlen = ST_PREFIX_KEY_FIXED_BITS + d.length;
  key.port = htons(r.port);
  key.family = d.family == 4 ? ST_FAMILY_IPV4 : ST_FAMILY_IPV6;
  std::memcpy(key.addr, d.addr.data(), d.family == 4 ? 4 : 16);
  return key;
}

// The map contents a rule set stands for: one entry per port, one trie entry per
// prefix rule. Empty string on success, else what is wrong with the set.
struct RuleMaps {
  std::map<uint16_t, st_rule> ports;
  std::vector<std::pair<st_prefix_key, st_rule>> prefixes;
};

std::string buildRuleMaps(const std::vector<PortRule>& rules, RuleMaps* out) {
  std::set<std::vector<uint8_t>> prefixesSeen;
  std::set<uint16_t> portOnly;
  for (const PortRule& r : rules) {
    if (r.ruleId == 0) {
      return "rule for port " + std::to_string(r.port) + " has id 0 (ids must be non-zero)";
    }
    st_rule& entry = out->ports[r.port];
    if (!r.destination) {
      if (!portOnly.insert(r.port).second) {
        return "two rules for port " + std::to_string(r.port) +
               " without a destination; give one of them a destination prefix";
      }
      entry.rule_id = r.ruleId;
      entry.sample_bp = r.sampleBp;
      if (r.compare) {
        entry.flags |= ST_RULE_F_COMPARE;
      }
      continue;
    }
    const model::DestinationPrefix& d = *r.destination;
    const unsigned maxLen = d.family == 4 ? 32 : 128;
    if ((d.family != 4 && d.family != 6) || d.length > maxLen) {
      return "invalid destination prefix in the rule for port " + std::to_string(r.port);
    }
    st_prefix_key key = prefixKey(r);
    const auto* raw = reinterpret_cast<const uint8_t*>(&key);
    if (!prefixesSeen.insert(std::vector<uint8_t>(raw, raw + sizeof(key))).second) {
      return "two rules for port " + std::to_string(r.port) + " with the same destination prefix";
    }
    out->prefixes.push_back({key, st_rule{r.ruleId, r.sampleBp, r.compare ? ST_RULE_F_COMPARE : 0u}});
    entry.flags |= ST_RULE_F_HAS_PREFIX;
  }
  if (out->prefixes.size() > ST_MAX_PREFIX_RULES) {
    return "at most " + std::to_string(ST_MAX_PREFIX_RULES) + " rules with a destination prefix";
  }
  return "";
}

// Makes the maps hold `next` instead of `prev`: new and changed entries are
// written first, entries only `prev` had are removed after, so a port present
// in both never goes without a rule. Empty on success.
std::string replaceRules(const std::vector<PortRule>& prev, const std::vector<PortRule>& next, int rulesFd,
                         int prefixFd) {
  RuleMaps want, had;
  if (std::string why = buildRuleMaps(next, &want); !why.empty()) {
    return why;
  }
  buildRuleMaps(prev, &had);  // was valid when installed
  for (const auto& [key, value] : want.prefixes) {
    if (bpf_map_update_elem(prefixFd, &key, &value, BPF_ANY) != 0) {
      return std::string("cannot write the prefix rule map: ") + std::strerror(errno);
    }
  }
  for (const auto& [port, value] : want.ports) {
    uint32_t key = port;
    if (bpf_map_update_elem(rulesFd, &key, &value, BPF_ANY) != 0) {
      return std::string("cannot write the rule map: ") + std::strerror(errno);
    }
  }
  for (const auto& [key, value] : had.prefixes) {
    bool kept = false;
    for (const auto& w : want.prefixes) {
      kept = kept || std::memcmp(&w.first, &key, sizeof(key)) == 0;
    }
    if (!kept) {
      bpf_map_delete_elem(prefixFd, &key);
    }
  }
  for (const auto& [port, value] : had.ports) {
    if (!want.ports.count(port)) {
      uint32_t key = port;
      st_rule none{};
      bpf_map_update_elem(rulesFd, &key, &none, BPF_ANY);
    }
  }
  return "";
}

bool anyCompare(const std::vector<PortRule>& rules) {
  return std::any_of(rules.begin(), rules.end(), [](const PortRule& r) { return r.compare; });
}

}  // namespace

std::optional<AttachMode> parseAttachMode(std::string_view text) {
  if (text == "auto") {
    return AttachMode::kAuto;
  }
  if (text == "tc") {
    return AttachMode::kTc;
  }
  if (text == "tcx") {
    return AttachMode::kTcx;
  }
  if (text == "xdp") {
    return AttachMode::kXdp;
  }
  return std::nullopt;
}

const char* attachModeName(AttachMode mode) {
  switch (mode) {
    case AttachMode::kAuto:
      return "auto";
    case AttachMode::kTc:
      return "tc";
    case AttachMode::kTcx:
      return "tcx";
    case AttachMode::kXdp:
      return "xdp";
  }
  return "?";
}

// One interface we are attached to; exactly one of tc, tcx, xdp is live, and in
// compare mode one of the egress twins as well.
struct Attached {
  std::string name;
  TcFilter tc;
  TcxLink tcx;
  XdpAttachment xdp;
  TcFilter tcEgress;
  TcxLink tcxEgress;
  bool egress() const { return tcEgress.attached() || tcxEgress.attached(); }
};

struct Capture::Impl {
  CaptureOptions options;
  AttachMode mode = AttachMode::kTc;
  AttachMode egressMode = AttachMode::kTc;  // kTc or kTcx
  bool compare = false;                     // some rule compares: egress hooks wanted
  capture_tc* skel = nullptr;
  ring_buffer* ring = nullptr;
  int ncpus = 1;
  std::map<int, Attached> attached;  // by ifindex
  LinkWatcher links;
  int epfd = -1;
  int timerfd = -1;
  uint32_t intervalUs = 0;
  bool following = true;  // false after detach(): ignore interfaces appearing

  ~Impl() {
    attached.clear();  // detach before the program goes away
    if (ring) {
      ring_buffer__free(ring);
    }
    if (skel) {
      capture_tc__destroy(skel);
    }
    if (timerfd >= 0) {
      close(timerfd);
    }
    if (epfd >= 0) {
      close(epfd);
    }
  }

  bool wanted(const std::string& name) const {
    return std::any_of(options.interfaces.begin(), options.interfaces.end(),
                       [&](const std::string& p) { return fnmatch(p.c_str(), name.c_str(), 0) == 0; });
  }

  void setTimer(uint32_t us) {
    if (timerfd < 0 || us == intervalUs) {
      return;
    }
    intervalUs = us;
    itimerspec its{};
    its.it_interval.tv_sec = us / 1000000;
    its.it_interval.tv_nsec = static_cast<long>(us % 1000000) * 1000;
    its.it_value = its.it_interval;
    timerfd_settime(timerfd, 0, &its, nullptr);
  }
};

Capture::Capture(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Capture::~Capture() = default;

AttachMode Capture::attachMode() const { return impl_->mode; }
AttachMode Capture::egressMode() const { return impl_->egressMode; }
bool Capture::egressAttached() const {
  return std::any_of(impl_->attached.begin(), impl_->attached.end(),
                     [](const auto& entry) { return entry.second.egress(); });
}

// Compare mode: the egress twin on an interface we are attached to. Same tc
// handle and priority as ingress (a different hook, so no clash). Empty on success.
std::string Capture::attachEgress(int ifindex, const std::string& name) {
  Impl& im = *impl_;
  auto it = im.attached.find(ifindex);
  if (it == im.attached.end() || it->second.egress()) {
    return "";
  }
  Attached& a = it->second;
  const int progFd = bpf_program__fd(im.skel->progs.st_capture_egr);
  std::string why;
  if (im.egressMode == AttachMode::kTcx) {
    why = a.tcxEgress.attach(ifindex, name, progFd, true);
  } else {
    bool replaced = false;
    why = a.tcEgress.attach(ifindex, name, progFd, im.options.tcHandle, im.options.tcPriority, &replaced, true,
                            im.options.stateDir);
  }
  if (!why.empty()) {
    return why;
  }
  stats_.egressAttaches.fetch_add(1, std::memory_order_relaxed);
  spdlog::info("attached to {} ({} egress: responses of rules with compare)", name, attachModeName(im.egressMode));
  return "";
}

// Attaches to one interface in the resolved mode, after removing what a killed
// run of ours may have left there. Empty on success.
std::string Capture::attachInterface(int ifindex, const std::string& name) {
  Impl& im = *impl_;
  CaptureStats& stats = stats_;
  Attached a;
  a.name = name;
  std::string why;
  // A killed tc-mode run leaves its cls_bpf filter; remove it whatever our mode,
  // or the interface would be captured twice.
  stats.staleRemoved.fetch_add(
      static_cast<uint64_t>(removeStaleFilters(ifindex, name, &why, false, im.options.stateDir)),
      std::memory_order_relaxed);
  if (!why.empty()) {
    return why;
  }
  // Same for the egress twin of a killed compare run, whether or not we compare now.
  stats.staleRemoved.fetch_add(
      static_cast<uint64_t>(removeStaleFilters(ifindex, name, &why, true, im.options.stateDir)),
      std::memory_order_relaxed);
  if (!why.empty()) {
    return why;
  }
  const int progFd = bpf_program__fd(im.skel->progs.st_capture_tc);
  switch (im.mode) {
    case AttachMode::kTc: {
      bool replaced = false;
      why = a.tc.attach(ifindex, name, progFd, im.options.tcHandle, im.options.tcPriority, &replaced, false,
                        im.options.stateDir);
      if (why.empty()) {
        spdlog::info("attached to {} (tc ingress, cls_bpf handle 0x{:x} priority {})", name, a.tc.handle(),
                     im.options.tcPriority);
      }
      break;
    }
    case AttachMode::kTcx:
      why = a.tcx.attach(ifindex, name, progFd);
      if (why.empty()) {
        spdlog::info("attached to {} (tcx ingress link, appended after the programs already there)", name);
      }
      break;
    case AttachMode::kXdp: {
      stats.staleRemoved.fetch_add(
          static_cast<uint64_t>(removeStaleXdpPrograms(ifindex, name, &why, im.options.stateDir)),
          std::memory_order_relaxed);
      if (!why.empty()) {
        return why;
      }
      XdpShared shared;
      shared.rulesFd = bpf_map__fd(im.skel->maps.st_rules);
      shared.prefixRulesFd = bpf_map__fd(im.skel->maps.st_prefix_rules);
      shared.eventsFd = bpf_map__fd(im.skel->maps.st_events);
      shared.countersFd = bpf_map__fd(im.skel->maps.st_counters);
      shared.hashSeed = im.skel->rodata->st_hash_seed;
      shared.wakeupBytes = im.skel->rodata->st_wakeup_bytes;
      why = a.xdp.attach(ifindex, name, shared, im.options.stateDir);
      if (why.empty() && a.xdp.usesDispatcher()) {
        spdlog::info("attached to {} (XDP through libxdp's dispatcher, {} mode)", name, a.xdp.modeName());
      } else if (why.empty()) {
        stats.xdpWithoutDispatcher.fetch_add(1, std::memory_order_relaxed);
        spdlog::info("attached to {} (XDP, {} mode, alone: without libxdp's dispatcher)", name, a.xdp.modeName());
      }
      break;
    }
    case AttachMode::kAuto:
      why = "internal error: attach mode not resolved";
      break;
  }
  if (!why.empty()) {
    return why;
  }
  im.attached.emplace(ifindex, std::move(a));
  stats.attaches.fetch_add(1, std::memory_order_relaxed);
  if (im.compare) {
    why = attachEgress(ifindex, name);
    if (!why.empty()) {
      im.attached.erase(ifindex);  // all or nothing: requests without responses would only count as missing
      return why;
    }
  }
  return "";
}

std::unique_ptr<Capture> Capture::open(const CaptureOptions& options, std::string* error) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;

  // Check names first: a typo should not cost a program load.
  if (options.interfaces.empty()) {
    *error = "no interface to capture on (give --interface NAME or a pattern such as 'veth*')";
    return nullptr;
  }
  for (const auto& name : options.interfaces) {
    if (!isPattern(name) && if_nametoindex(name.c_str()) == 0) {
      *error = "unknown interface '" + name + "' (see `ip link` for the interfaces of this host)";
      return nullptr;
    }
  }
  if (options.ringBufferBytes < 4096 || (options.ringBufferBytes & (options.ringBufferBytes - 1)) != 0) {
    *error = "invalid ring buffer size " + std::to_string(options.ringBufferBytes) +
             " (must be a power of two of at least 4096 bytes)";
    return nullptr;
  }

  impl->skel = capture_tc__open();
  if (!impl->skel) {
    int err = -errno;
    *error = std::string("cannot open the BPF program: ") + std::strerror(-err) + privilegeHint(err);
    return nullptr;
  }
  impl->skel->rodata->st_hash_seed = options.hashSeed;
  if (options.adaptiveWakeups) {
    impl->skel->rodata->st_wakeup_bytes = options.wakeupBytes != 0 ? options.wakeupBytes : options.ringBufferBytes / 8;
  }
  int err = bpf_map__set_max_entries(impl->skel->maps.st_events, options.ringBufferBytes);
  if (err) {
    *error = "invalid ring buffer size " + std::to_string(options.ringBufferBytes) +
             " (must be a power of two of at least 4096 bytes)";
    return nullptr;
  }
  if (std::string missing = missingKernelSupport(options.attach == AttachMode::kXdp); !missing.empty()) {
    *error = missing;
    return nullptr;
  }
  clearVerifierLog();
  err = capture_tc__load(impl->skel);
  if (err) {
    *error = describeLoadFailure("the capture program", err);
    return nullptr;
  }

  std::string why = replaceRules({}, options.rules, bpf_map__fd(impl->skel->maps.st_rules),
                                 bpf_map__fd(impl->skel->maps.st_prefix_rules));
  if (!why.empty()) {
    *error = why;
    return nullptr;
  }

  impl->ncpus = libbpf_num_possible_cpus();
  if (impl->ncpus <= 0) {
    *error = "cannot count the possible CPUs (/sys/devices/system/cpu/possible)";
    return nullptr;
  }

  impl->mode = options.attach;
  if (impl->mode == AttachMode::kAuto) {
    std::string reason;
    const bool tcx = tcxSupported(bpf_program__fd(impl->skel->progs.st_capture_tc), &reason);
    impl->mode = tcx ? AttachMode::kTcx : AttachMode::kTc;
    spdlog::info("attach mode auto: using {} because {}", attachModeName(impl->mode), reason);
  } else {
    spdlog::info("attach mode {} (as configured)", attachModeName(impl->mode));
  }
  impl->compare = anyCompare(options.rules);
  if (impl->mode == AttachMode::kXdp) {
    // XDP has no egress hook: responses are captured at tc egress, tcx if possible.
    std::string reason;
    impl->egressMode = tcxSupported(bpf_program__fd(impl->skel->progs.st_capture_egr), &reason) ? AttachMode::kTcx
                                                                                              : AttachMode::kTc;
  } else {
    impl->egressMode = impl->mode;
  }

  auto capture = std::unique_ptr<Capture>(new Capture(std::move(impl)));
  Impl& im = *capture->impl_;
  im.ring = ring_buffer__new(bpf_map__fd(im.skel->maps.st_events), &Capture::onRecord, capture.get(), nullptr);
  if (!im.ring) {
    *error = std::string("cannot open the ring buffer: ") + std::strerror(errno);
    return nullptr;
  }

  // Subscribe before listing, so an interface appearing in between is not missed.
  why = im.links.open();
  if (!why.empty()) {
    *error = why;
    return nullptr;
  }
  im.epfd = epoll_create1(EPOLL_CLOEXEC);
  im.timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (im.epfd < 0 || im.timerfd < 0) {
    *error = std::string("cannot set up the capture's event sources: ") + std::strerror(errno);
    return nullptr;
  }
  for (int fd : {bpf_map__fd(im.skel->maps.st_events), im.links.fd(), im.timerfd}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (epoll_ctl(im.epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
      *error = std::string("cannot set up the capture's event sources: ") + std::strerror(errno);
      return nullptr;
    }
  }
  if (options.adaptiveWakeups) {
    im.setTimer(options.pollIntervalUs);
  }

  for (const auto& [ifindex, name] : currentInterfaces()) {
    if (!im.wanted(name)) {
      continue;
    }
    why = capture->attachInterface(ifindex, name);
    if (!why.empty()) {
      *error = why;
      return nullptr;  // attachments so far are removed by their destructors
    }
  }
  capture->refreshNames();
  if (im.attached.empty()) {
    spdlog::warn("no interface matches {} yet; attaching when one appears",
                 fmt::format("'{}'", fmt::join(options.interfaces, "', '")));
  }
  return capture;
}

void Capture::refreshNames() {
  attachedNames_.clear();
  for (const auto& [ifindex, a] : impl_->attached) {
    attachedNames_.push_back(a.name);
  }
}

void Capture::forget(int ifindex, bool gone) {
  auto it = impl_->attached.find(ifindex);
  if (it == impl_->attached.end()) {
    return;
  }
  if (gone) {
    it->second.tc.release();
    it->second.xdp.release();
    it->second.tcEgress.release();
    // A tcx link of a removed device is already detached; closing the fd is all.
  }
  spdlog::info("{} {}: no longer capturing there", it->second.name, gone ? "disappeared" : "no longer matches");
  impl_->attached.erase(it);
  stats_.forgotten.fetch_add(1, std::memory_order_relaxed);
}

void Capture::followInterfaces() {
  Impl& im = *impl_;
  bool overflowed = false;
  std::vector<LinkEvent> events = im.links.read(&overflowed);
  if (!im.following) {
    return;
  }
  bool changed = false;
  if (overflowed) {
    // Notifications were lost: compare with the full list instead.
    stats_.linkRescans.fetch_add(1, std::memory_order_relaxed);
    const auto now = currentInterfaces();
    std::vector<int> goneOrRenamed;
    for (const auto& [ifindex, a] : im.attached) {
      auto it = now.find(ifindex);
      if (it == now.end() || it->second != a.name) {
        goneOrRenamed.push_back(ifindex);
      }
    }
    for (int ifindex : goneOrRenamed) {
      forget(ifindex, now.find(ifindex) == now.end());
      changed = true;
    }
    events.clear();
    for (const auto& [ifindex, name] : now) {
      events.push_back({LinkEvent::Kind::kPresent, ifindex, name});
    }
  }
  for (const LinkEvent& ev : events) {
    auto it = im.attached.find(ev.ifindex);
    if (ev.kind == LinkEvent::Kind::kGone) {
      if (it != im.attached.end()) {
        forget(ev.ifindex, true);
        changed = true;
      }
      continue;
    }
    const bool want = !ev.name.empty() && im.wanted(ev.name);
    if (it != im.attached.end()) {
      if (ev.name.empty() || ev.name == it->second.name) {
        continue;  // a state change (up/down, MTU...) of an interface we have
      }
      if (!want) {
        forget(ev.ifindex, false);  // renamed away from the patterns
        changed = true;
        continue;
      }
      it->second.name = ev.name;
      changed = true;
      continue;
    }
    if (!want) {
      continue;
    }
    std::string why = attachInterface(ev.ifindex, ev.name);
    if (!why.empty()) {
      stats_.attachErrors.fetch_add(1, std::memory_order_relaxed);
      spdlog::warn("cannot capture on new interface {}: {}", ev.name, why);
      continue;
    }
    changed = true;
  }
  if (changed) {
    refreshNames();
  }
}

int Capture::fd() const { return impl_->epfd; }

int Capture::consume(SegmentSink& sink) {
  Impl& im = *impl_;
  stats_.polls.fetch_add(1, std::memory_order_relaxed);
  uint64_t expirations = 0;
  [[maybe_unused]] ssize_t r = read(im.timerfd, &expirations, sizeof(expirations));
  followInterfaces();

  sink_ = &sink;
  int n = ring_buffer__consume(im.ring);
  sink_ = nullptr;

  if (n <= 0) {
    stats_.emptyPolls.fetch_add(1, std::memory_order_relaxed);
  }
  if (im.options.adaptiveWakeups) {
    // Poll fast while records flow; back off (doubling) while the ring is quiet.
    // The kernel forces a wakeup anyway once wakeupBytes are waiting.
    const uint32_t base = std::max<uint32_t>(im.options.pollIntervalUs, 100);
    const uint32_t idle = std::max(base, im.options.idlePollIntervalUs);
    im.setTimer(n > 0 ? base : std::min<uint32_t>(im.intervalUs * 2, idle));
  }
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
  if (rec->direction != ST_DIR_TO_SERVER && rec->direction != ST_DIR_FROM_SERVER) {
    self->stats_.badRecords.fetch_add(1, std::memory_order_relaxed);
    return 0;
  }
  flow::Segment seg;
  seg.fromServer = rec->direction == ST_DIR_FROM_SERVER;
  if (seg.fromServer) {
    self->stats_.fromServerRecords.fetch_add(1, std::memory_order_relaxed);
  }
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

void Capture::detach() {
  impl_->following = false;
  stats_.forgotten.fetch_add(impl_->attached.size(), std::memory_order_relaxed);
  impl_->attached.clear();
  attachedNames_.clear();
}

std::string Capture::updateRules(const std::vector<PortRule>& rules) {
  Impl& im = *impl_;
  const bool want = anyCompare(rules);
  const bool attachNow = want && !im.compare && im.following;
  auto dropEgress = [&im] {
    for (auto& [ifindex, a] : im.attached) {
      a.tcEgress.detach();
      a.tcxEgress.detach();
    }
  };
  // Egress hooks first, so that the new compare rules see their responses from
  // the first request on; all or nothing.
  if (attachNow) {
    for (const auto& [ifindex, a] : im.attached) {
      std::string why = attachEgress(ifindex, a.name);
      if (!why.empty()) {
        dropEgress();
        return why;
      }
    }
  }
  std::string why = replaceRules(im.options.rules, rules, bpf_map__fd(im.skel->maps.st_rules),
                                 bpf_map__fd(im.skel->maps.st_prefix_rules));
  if (!why.empty()) {
    if (attachNow) {
      dropEgress();
    }
    return why;
  }
  im.options.rules = rules;
  if (im.compare && !want) {
    dropEgress();  // no rule compares any more: the egress path costs nothing again
  }
  im.compare = want;
  return "";
}

}  // namespace shadowtap::capture
