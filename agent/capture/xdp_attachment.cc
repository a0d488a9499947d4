#include "capture/xdp_attachment.h"

#include "capture/slot_lock.h"

#include <bpf/libbpf.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <xdp/libxdp.h>

#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <utility>

#include "capture/freplace_probe.h"
#include "capture/kernel_support.h"
#include "capture/libbpf_log.h"
#include "capture_xdp.skel.h"
#include "shadowtap/capture_abi.h"

namespace shadowtap::capture {
namespace {

int libxdpPrint(enum libxdp_print_level level, const char* format, va_list args) {
  char line[1024];
  int n = vsnprintf(line, sizeof(line), format, args);
  if (n > 0 && static_cast<size_t>(n) < sizeof(line) && line[n - 1] == '\n') {
    line[n - 1] = '\0';
  }
  // One level down, as libbpf's: libxdp warns about probing it expects to fail.
  spdlog::log(level == LIBXDP_WARN ? spdlog::level::info : spdlog::level::debug, "libxdp: {}", line);
  return 0;
}

void routeLibxdpLogs() {
  static std::once_flag once;
  std::call_once(once, [] { libxdp_set_print(libxdpPrint); });
}

std::string xdpError(int err) {
  char buf[256];
  libxdp_strerror(err, buf, sizeof(buf));
  return buf;
}

// Driver name as ethtool reports it ("veth", "mlx5_core", ...), or "".
std::string driverName(const std::string& ifname) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return "";
  }
  ethtool_drvinfo info{};
  info.cmd = ETHTOOL_GDRVINFO;
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
  ifr.ifr_data = reinterpret_cast<char*>(&info);
  std::string name;
  if (ioctl(fd, SIOCETHTOOL, &ifr) == 0) {
    name.assign(info.driver, strnlen(info.driver, sizeof(info.driver)));
  }
  ::close(fd);
  return name;
}

}  // namespace

XdpAttachment::XdpAttachment(XdpAttachment&& other) noexcept
    : skel_(std::exchange(other.skel_, nullptr)),
      prog_(std::exchange(other.prog_, nullptr)),
      ifindex_(std::exchange(other.ifindex_, 0)),
      mode_(other.mode_),
      dispatcher_(other.dispatcher_),
      noDispatcherReason_(std::move(other.noDispatcherReason_)),
      lock_(std::move(other.lock_)) {}

XdpAttachment& XdpAttachment::operator=(XdpAttachment&& other) noexcept {
  if (this != &other) {
    detach();
    skel_ = std::exchange(other.skel_, nullptr);
    prog_ = std::exchange(other.prog_, nullptr);
    ifindex_ = std::exchange(other.ifindex_, 0);
    mode_ = other.mode_;
    dispatcher_ = other.dispatcher_;
    noDispatcherReason_ = std::move(other.noDispatcherReason_);
    lock_ = std::move(other.lock_);
  }
  return *this;
}

XdpAttachment::~XdpAttachment() { detach(); }

const char* XdpAttachment::modeName() const {
  switch (mode_) {
    case XDP_MODE_NATIVE:
      return "native";
    case XDP_MODE_SKB:
      return "skb";
    case XDP_MODE_HW:
      return "hw";
    default:
      return "unspec";
  }
}

namespace {

// The kernel's generic XDP hands programs linear packets with 256 bytes of
// headroom only: it reallocates or copies every packet of the interface
// short of either (GRO and GSO ones, most others for the headroom; all ports)
// first, and drops the packet when that allocation fails. Said once per run
// (a pattern such as veth* attaches to every new pod), then at debug level.
void warnSkbMode(const std::string& ifname, bool veth) {
  static std::atomic<bool> said{false};
  const auto level = said.exchange(true) ? spdlog::level::debug : spdlog::level::warn;
  spdlog::log(level,
              "XDP on {} runs in skb (generic) mode{}: before any XDP program runs there the kernel reallocates "
              "or copies every packet that is not linear with 256 bytes of headroom (GRO/GSO ones and most "
              "others, all ports, not only the rules'), which costs CPU and drops the packet when memory is "
              "short. --attach tcx or tc have neither cost (said once; further interfaces at debug level)",
              ifname, veth ? " (shadowtap's choice on veth)" : " (the driver has no native XDP)");
}

}  // namespace

std::string XdpAttachment::attach(int ifindex, const std::string& ifname, const XdpShared& shared,
                                  const std::string& stateDir) {
  routeLibxdpLogs();
  std::string lockWhy;
  SlotLock lock;
  if (SlotLock::tryAcquire(stateDir, SlotLock::xdpSlot(ifindex), &lock, &lockWhy) == SlotLock::Result::kHeld) {
    return "another running shadowtap captures " + ifname + " in XDP mode; stop it first or use --attach tcx/tc";
  }
  skel_ = capture_xdp__open();
  if (!skel_) {
    return std::string("cannot open the XDP program: ") + std::strerror(errno);
  }
  skel_->rodata->st_hash_seed = shared.hashSeed;
  skel_->rodata->st_wakeup_bytes = shared.wakeupBytes;
  skel_->rodata->st_workers = shared.workers;
  int err = 0;
  err = err ? err : bpf_map__reuse_fd(skel_->maps.st_rules, shared.rulesFd);
  err = err ? err : bpf_map__reuse_fd(skel_->maps.st_prefix_rules, shared.prefixRulesFd);
  err = err ? err : bpf_map__reuse_fd(skel_->maps.st_events, shared.eventsFd);
  err = err ? err : bpf_map__reuse_fd(skel_->maps.st_rings, shared.ringsFd);
  err = err ? err : bpf_map__reuse_fd(skel_->maps.st_counters, shared.countersFd);
  if (err) {
    close();
    return std::string("cannot share the capture maps with the XDP program: ") + std::strerror(-err);
  }
  prog_ = xdp_program__from_bpf_obj(skel_->obj, "xdp");
  if (long e = libxdp_get_error(prog_); e != 0 || !prog_) {
    prog_ = nullptr;
    close();
    return "cannot prepare the XDP program for libxdp: " + xdpError(static_cast<int>(e));
  }

  const bool veth = driverName(ifname) == "veth";
  mode_ = veth ? XDP_MODE_SKB : XDP_MODE_NATIVE;
  clearVerifierLog();
  err = xdp_program__attach(prog_, ifindex, static_cast<xdp_attach_mode>(mode_), 0);
  if (err && !veth) {
    spdlog::info("native XDP on {} failed ({}); using skb mode", ifname, xdpError(err));
    mode_ = XDP_MODE_SKB;
    err = xdp_program__attach(prog_, ifindex, XDP_MODE_SKB, 0);
  }
  if (err && !lastVerifierLog(1).empty()) {
    close();
    return describeLoadFailure("the XDP capture program", err);
  }
  if (err) {
    close();
    return "cannot attach the XDP program to " + ifname + " through libxdp: " + xdpError(err) +
           (err == -EEXIST || err == -EBUSY
                ? " (a non-libxdp XDP program or another mode is already there; use --attach tc)"
                : "");
  }
  ifindex_ = ifindex;
  lock_ = std::move(lock);
  if (mode_ == XDP_MODE_SKB) {
    warnSkbMode(ifname, veth);
  }
  // libxdp falls back to a plain single-program attach when it cannot use its
  // dispatcher (its freplace compatibility check fails, no bpffs): ours then
  // works, but nobody else can add an XDP program next to it, and whoever tries
  // gets EBUSY. That defeats the point of XDP mode, so say it loudly and why.
  dispatcher_ = false;
  noDispatcherReason_.clear();
  if (xdp_multiprog* mp = xdp_multiprog__get_from_ifindex(ifindex); mp && libxdp_get_error(mp) == 0) {
    dispatcher_ = !xdp_multiprog__is_legacy(mp);
    xdp_multiprog__close(mp);
  }
  if (!dispatcher_) {
    const FreplaceProbe probe = probeFreplace();
    noDispatcherReason_ = probe.works() ? "libxdp could not set up its dispatcher although this kernel allows "
                                          "freplace programs (is bpffs mounted at /sys/fs/bpf? see the libxdp log)"
                                        : probe.detail;
    spdlog::warn("XDP WITHOUT DISPATCHER on {}: our program is attached alone, so no other XDP program can run "
                 "on {} while shadowtap is attached (theirs fails with EBUSY). Cause: {}. Use --attach tcx or "
                 "--attach tc to coexist with other programs.",
                 ifname, ifname, noDispatcherReason_);
  }
  return "";
}

void XdpAttachment::close() {
  if (prog_) {
    xdp_program__close(prog_);
    prog_ = nullptr;
  }
  if (skel_) {
    capture_xdp__destroy(skel_);
    skel_ = nullptr;
  }
}

void XdpAttachment::detach() {
  if (prog_ && ifindex_ != 0) {
    int err = xdp_program__detach(prog_, ifindex_, static_cast<xdp_attach_mode>(mode_), 0);
    if (err && err != -ENOENT && err != -ENODEV) {
      spdlog::warn("could not detach the XDP program from ifindex {}: {}", ifindex_, xdpError(err));
    }
  }
  ifindex_ = 0;
  close();
  lock_.release();  // after the program is gone: the hook is free for the next instance
}

void XdpAttachment::release() {
  ifindex_ = 0;
  close();
  lock_.release();
}

int removeStaleXdpPrograms(int ifindex, const std::string& ifname, std::string* error,
                           const std::string& stateDir) {
  routeLibxdpLogs();
  // Ours on this hook belongs to another running instance while it holds the lock.
  SlotLock lock;
  std::string lockWhy;
  if (SlotLock::tryAcquire(stateDir, SlotLock::xdpSlot(ifindex), &lock, &lockWhy) == SlotLock::Result::kHeld) {
    return 0;
  }
  libxdp_clean_references(ifindex);
  // Each detach replaces the dispatcher, so look again after every removal.
  constexpr int kMaxStale = 16;
  int removed = 0;
  for (int round = 0; round < kMaxStale; ++round) {
    xdp_multiprog* mp = xdp_multiprog__get_from_ifindex(ifindex);
    if (!mp || libxdp_get_error(mp) != 0) {
      return removed;  // nothing attached
    }
    if (xdp_multiprog__is_legacy(mp)) {
      // A single program without the dispatcher: ours when libxdp could not set
      // its dispatcher up (no freplace); it stays attached after a SIGKILL and
      // would block every restart. Anyone else's is left alone.
      xdp_program* main = xdp_multiprog__main_prog(mp);
      const bool isOurs = main != nullptr && std::strcmp(xdp_program__name(main), ST_PROG_XDP_NAME) == 0;
      int err = 0;
      if (isOurs) {
        err = xdp_multiprog__detach(mp);
      }
      xdp_multiprog__close(mp);
      if (!isOurs) {
        return removed;
      }
      if (err) {
        *error = "cannot remove a stale shadowtap XDP program from " + ifname + ": " + xdpError(err);
        return removed;
      }
      spdlog::info("removed a stale shadowtap XDP program from {} left by an earlier run (attached without "
                   "libxdp's dispatcher)", ifname);
      ++removed;
      continue;
    }
    xdp_program* ours = nullptr;
    for (xdp_program* p = xdp_multiprog__next_prog(nullptr, mp); p; p = xdp_multiprog__next_prog(p, mp)) {
      if (std::strcmp(xdp_program__name(p), ST_PROG_XDP_NAME) == 0) {
        ours = p;
        break;
      }
    }
    int err = ours ? xdp_program__detach(ours, ifindex, xdp_multiprog__attach_mode(mp), 0) : 0;
    xdp_multiprog__close(mp);
    if (!ours) {
      return removed;
    }
    if (err) {
      *error = "cannot remove a stale shadowtap XDP program from " + ifname + ": " + xdpError(err);
      return removed;
    }
    spdlog::info("removed a stale shadowtap XDP program from {} left by an earlier run", ifname);
    ++removed;
  }
  return removed;
}

}  // namespace shadowtap::capture
