#include "capture/tc_filter.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <utility>

#include "capture/libbpf_log.h"
#include "capture/netlink.h"
#include "capture/slot_lock.h"
#include "shadowtap/capture_abi.h"

namespace shadowtap::capture {
namespace {

bpf_tc_hook clsactHook(int ifindex, bool egress) {
  bpf_tc_hook hook{};
  hook.sz = sizeof(hook);
  hook.ifindex = ifindex;
  hook.attach_point = egress ? BPF_TC_EGRESS : BPF_TC_INGRESS;
  return hook;
}

const char* ourProgName(bool egress) { return egress ? ST_PROG_TC_EGRESS_NAME : ST_PROG_TC_NAME; }
const char* hookName(bool egress) { return egress ? "egress" : "ingress"; }

// Name of the program loaded under prog id, or "" when it cannot be read.
std::string programName(uint32_t progId) {
  int fd = bpf_prog_get_fd_by_id(progId);
  if (fd < 0) {
    return "";
  }
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  std::string name;
  if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0) {
    name.assign(info.name, strnlen(info.name, sizeof(info.name)));
  }
  close(fd);
  return name;
}

// cls_bpf filters attached by libbpf or tc are named "<prog name>:[<prog id>]".
bool isOurs(const IngressFilter& f, bool egress) {
  if (f.kind != "bpf") {
    return false;
  }
  const std::string prefix = std::string(ourProgName(egress)) + ":";
  if (f.bpfName.compare(0, prefix.size(), prefix) == 0) {
    return true;
  }
  return f.progId != 0 && programName(f.progId) == ourProgName(egress);
}

}  // namespace

int removeStaleFilters(int ifindex, const std::string& ifname, std::string* error, bool egress,
                       const std::string& stateDir) {
  std::string why;
  const std::vector<IngressFilter> filters = dumpIngressFilters(ifindex, &why, egress);
  if (!why.empty()) {
    *error = std::string("cannot list the tc ") + hookName(egress) + " filters of " + ifname + ": " + why;
    return 0;
  }
  int removed = 0;
  for (const IngressFilter& f : filters) {
    if (!isOurs(f, egress)) {
      continue;
    }
    SlotLock lock;
    std::string lockWhy;
    if (SlotLock::tryAcquire(stateDir, SlotLock::tcSlot(ifindex, egress, f.handle, f.priority), &lock, &lockWhy) ==
        SlotLock::Result::kHeld) {
      spdlog::info("left the tc {} filter on {} (priority {}, handle 0x{:x}): another running shadowtap owns it",
                   hookName(egress), ifname, f.priority, f.handle);
      continue;
    }
    bpf_tc_hook hook = clsactHook(ifindex, egress);
    bpf_tc_opts opts{};
    opts.sz = sizeof(opts);
    opts.handle = f.handle;
    opts.priority = f.priority;
    int err = bpf_tc_detach(&hook, &opts);
    if (err && err != -ENOENT) {
      *error = "cannot remove the stale shadowtap tc filter (priority " + std::to_string(f.priority) +
               ", handle 0x" + fmt::format("{:x}", f.handle) + ") from " + ifname + ": " + std::strerror(-err);
      return removed;
    }
    spdlog::info("removed a stale shadowtap tc filter from {} (priority {}, handle 0x{:x}, {}) left by an earlier run",
                 ifname, f.priority, f.handle, f.bpfName);
    ++removed;
  }
  return removed;
}

TcFilter::TcFilter(TcFilter&& other) noexcept
    : ifindex_(std::exchange(other.ifindex_, 0)),
      ifname_(std::move(other.ifname_)),
      handle_(other.handle_),
      priority_(other.priority_),
      egress_(other.egress_),
      lock_(std::move(other.lock_)) {}

TcFilter& TcFilter::operator=(TcFilter&& other) noexcept {
  if (this != &other) {
    detach();
    ifindex_ = std::exchange(other.ifindex_, 0);
    ifname_ = std::move(other.ifname_);
    handle_ = other.handle_;
    priority_ = other.priority_;
    egress_ = other.egress_;
    lock_ = std::move(other.lock_);
  }
  return *this;
}

TcFilter::~TcFilter() { detach(); }

std::string TcFilter::attach(int ifindex, const std::string& ifname, int progFd, uint32_t handle,
                             uint32_t priority, bool* replacedStale, bool egress, const std::string& stateDir) {
  *replacedStale = false;
  // The first handle from `handle` on whose slot no other running instance
  // holds: a second shadowtap on this interface gets a filter of its own
  // instead of replacing (and, at its exit, deleting) the first one's.
  for (uint32_t h = handle; h < handle + kMaxInstances; ++h) {
    SlotLock lock;
    std::string why;
    const SlotLock::Result r =
        SlotLock::tryAcquire(stateDir, SlotLock::tcSlot(ifindex, egress, h, priority), &lock, &why);
    if (r == SlotLock::Result::kHeld) {
      spdlog::info("tc {} handle 0x{:x} priority {} on {} belongs to another running shadowtap; trying the next handle",
                   hookName(egress), h, priority, ifname);
      continue;
    }
    if (r == SlotLock::Result::kUnavailable && !stateDir.empty()) {
      spdlog::warn("cannot tell whether another shadowtap runs on {} ({}); a second instance there would replace "
                   "this one's tc filter", ifname, why);
    }
    std::string error = attachAt(ifindex, ifname, progFd, h, priority, replacedStale, egress);
    if (error.empty()) {
      lock_ = std::move(lock);
    }
    return error;
  }
  return fmt::format("tc {} handles 0x{:x}-0x{:x} at priority {} on {} are all held by other running shadowtap "
                     "instances; stop one of them or pick another --tc-priority",
                     hookName(egress), handle, handle + kMaxInstances - 1, priority, ifname);
}

std::string TcFilter::attachAt(int ifindex, const std::string& ifname, int progFd, uint32_t handle,
                               uint32_t priority, bool* replacedStale, bool egress) {
  bpf_tc_hook hook = clsactHook(ifindex, egress);
  int err = 0;
  {
    // The egress filter goes on the clsact qdisc the ingress filter made: EEXIST is the usual answer.
    std::optional<LibbpfQuietScope> quiet;
    if (egress) {
      quiet.emplace();
    }
    err = bpf_tc_hook_create(&hook);
  }
  if (err && err != -EEXIST) {
    return "cannot create the clsact qdisc on " + ifname + ": " + std::strerror(-err) +
           (err == -ENOENT || err == -EOPNOTSUPP
                ? " (this kernel has no clsact qdisc: it needs CONFIG_NET_SCH_INGRESS, module sch_ingress)"
                : "");
  }

  // Is the slot taken? Ours from a killed run is replaced; anyone else's is left alone.
  bpf_tc_opts query{};
  query.sz = sizeof(query);
  query.handle = handle;
  query.priority = priority;
  {
    LibbpfQuietScope quiet;  // "no such filter" is the usual answer
    err = bpf_tc_query(&hook, &query);
  }
  uint32_t flags = 0;
  if (err == 0) {
    std::string name = programName(query.prog_id);
    if (name != ourProgName(egress)) {
      return std::string("tc ") + hookName(egress) + " filter handle 0x" + fmt::format("{:x}", handle) + " priority " +
             std::to_string(priority) + " on " + ifname + " belongs to another program (" +
             (name.empty() ? "id " + std::to_string(query.prog_id) : name) +
             "); pick a free slot with --tc-priority";
    }
    flags = BPF_TC_F_REPLACE;
    *replacedStale = true;
  }

  bpf_tc_opts opts{};
  opts.sz = sizeof(opts);
  opts.prog_fd = progFd;
  opts.handle = handle;
  opts.priority = priority;
  opts.flags = flags;
  err = bpf_tc_attach(&hook, &opts);
  if (err) {
    return std::string("cannot attach the tc ") + hookName(egress) + " filter to " + ifname + ": " + std::strerror(-err);
  }
  ifindex_ = ifindex;
  ifname_ = ifname;
  handle_ = handle;
  priority_ = priority;
  egress_ = egress;
  return "";
}

void TcFilter::detach() {
  if (ifindex_ == 0) {
    return;
  }
  bpf_tc_hook hook = clsactHook(ifindex_, egress_);
  bpf_tc_opts opts{};
  opts.sz = sizeof(opts);
  opts.handle = handle_;
  opts.priority = priority_;
  int err = bpf_tc_detach(&hook, &opts);
  if (err && err != -ENOENT && err != -ENODEV && err != -EINVAL) {
    spdlog::warn("could not detach tc filter from {}: {}", ifname_, std::strerror(-err));
  }
  lock_.release();  // after the filter is gone: the slot is free for the next instance
  ifindex_ = 0;
}

}  // namespace shadowtap::capture
