#pragma once

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "capture/capture_stats.h"
#include "capture/netlink.h"

namespace shadowtap::capture {

// What the watcher asks of whoever attaches to interfaces (AttachedInterfaces;
// a fake in tests).
class InterfaceTarget {
 public:
  virtual ~InterfaceTarget() = default;
  // The name under which we are attached to `ifindex`; nullopt when we are not.
  virtual std::optional<std::string> attachedName(int ifindex) const = 0;
  // Every interface we are attached to, by ifindex.
  virtual std::map<int, std::string> attached() const = 0;
  // Empty on success, else why not (nothing stays attached then).
  virtual std::string attach(int ifindex, const std::string& name) = 0;
  // `gone`: the interface was removed, and our programs with it.
  virtual void forget(int ifindex, bool gone) = 0;
  virtual void rename(int ifindex, const std::string& name) = 0;
};

// Interfaces of this network namespace, by ifindex.
std::map<int, std::string> currentInterfaces();

// The link-layer type (ARPHRD_*) of interface `name` in this network
// namespace; -1 when it cannot be read (no such interface).
int linkTypeOf(const std::string& name);

// Why the capture program cannot read `name`'s packets, whose link-layer type
// is `linkType`: empty for Ethernet and loopback (frames with an Ethernet
// header) and for an unknown type (-1), else one line saying what to do.
std::string notEthernetReason(const std::string& name, int linkType);

// Follows the interfaces whose names match the capture's names and fnmatch(3)
// patterns ("eth0", "veth*"), from rtnetlink link notifications: one appearing
// is attached, one renamed is renamed or, renamed away from the patterns,
// forgotten, one removed is forgotten. When the kernel dropped notifications
// (a burst of pods), the full interface list is compared instead. A
// matching interface without Ethernet frames (tun, WireGuard, IP tunnels) is
// skipped: logged once and counted (CaptureStats::notEthernet).
class InterfaceWatcher {
 public:
  using LinkTypeLookup = std::function<int(const std::string& name)>;
  InterfaceWatcher(std::vector<std::string> patterns, CaptureStats& stats, LinkTypeLookup linkType = linkTypeOf)
      : patterns_(std::move(patterns)), stats_(stats), linkType_(std::move(linkType)) {}

  // Before anything is loaded, so that a typo costs no program load: empty when
  // there is something to capture on and every plain name (no *?[) exists and,
  // unless `tlsProbes` (--tls: requests come from OpenSSL's plaintext whatever
  // the interface, so one without Ethernet is only skipped), carries Ethernet
  // frames; else one line saying what to do.
  static std::string checkNames(const std::vector<std::string>& patterns, bool tlsProbes = false);

  // Subscribes to link notifications; empty on success, else why not. Call
  // before attachExisting(), so that an interface appearing in between is not missed.
  [[nodiscard]] std::string open() { return links_.open(); }
  int fd() const { return links_.fd(); }

  bool wanted(const std::string& name) const;

  // Attaches every interface there is that matches. Empty on success, else the
  // first failure (the caller gives up: at start, every failure is fatal).
  [[nodiscard]] std::string attachExisting(InterfaceTarget& target);

  // Reads every waiting notification and applies it (after stop(), only reads
  // them). True when the interfaces attached or their names changed. A new
  // interface we cannot attach to is counted (attachErrors) and logged.
  bool follow(InterfaceTarget& target);

  // What follow() does with the notifications read: `rescan` is the full
  // interface list when notifications were lost, else nullptr.
  bool apply(std::vector<LinkEvent> events, const std::map<int, std::string>* rescan, InterfaceTarget& target);

  // Stops attaching: the capture is detaching.
  void stop() { following_ = false; }

 private:
  // True when `name` is skipped for its link type (logged and counted the
  // first time for `ifindex`): `linkType` when known (>= 0, from the
  // notification), else looked up by name.
  bool skipped(int ifindex, const std::string& name, int linkType = -1);

  std::vector<std::string> patterns_;
  CaptureStats& stats_;
  LinkTypeLookup linkType_;
  std::set<int> skipped_;  // ifindexes skipped for their link type, until they go
  LinkWatcher links_;
  bool following_ = true;
};

}  // namespace shadowtap::capture
