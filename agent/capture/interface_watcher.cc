#include "capture/interface_watcher.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <fnmatch.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>

#include "base/counters.h"
#include "base/fd.h"

namespace shadowtap::capture {
namespace {

bool isPattern(const std::string& s) { return s.find_first_of("*?[") != std::string::npos; }

// Turns a lost-notifications rescan into events: what is gone or renamed is
// forgotten here (a rename back into the patterns is then attached anew), and
// every present interface becomes a kPresent event.
bool forgetMissing(const std::map<int, std::string>& now, InterfaceTarget& target, std::vector<LinkEvent>* events) {
  bool changed = false;
  for (const auto& [ifindex, name] : target.attached()) {
    auto it = now.find(ifindex);
    if (it == now.end() || it->second != name) {
      target.forget(ifindex, it == now.end());
      changed = true;
    }
  }
  events->clear();
  for (const auto& [ifindex, name] : now) {
    events->push_back({LinkEvent::Kind::kPresent, ifindex, name});
  }
  return changed;
}

}  // namespace

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

int linkTypeOf(const std::string& name) {
  ifreq req{};
  if (name.empty() || name.size() >= sizeof(req.ifr_name)) {
    return -1;
  }
  name.copy(req.ifr_name, name.size());
  const base::Fd s(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!s.valid() || ioctl(s.get(), SIOCGIFHWADDR, &req) != 0) {
    return -1;
  }
  return req.ifr_hwaddr.sa_family;
}

std::string notEthernetReason(const std::string& name, int linkType) {
  if (linkType < 0 || linkType == ARPHRD_ETHER || linkType == ARPHRD_LOOPBACK) {
    return "";
  }
  static const std::map<int, std::string> kNames = {
      {ARPHRD_NONE, "none: a tun or WireGuard device"}, {ARPHRD_TUNNEL, "ipip"}, {ARPHRD_TUNNEL6, "ip6tnl"},
      {ARPHRD_SIT, "sit"},        {ARPHRD_IPGRE, "gre"},  {823, "ip6gre"},
      {ARPHRD_RAWIP, "raw IP"},   {ARPHRD_PPP, "ppp"},    {ARPHRD_INFINIBAND, "InfiniBand"}};
  const auto it = kNames.find(linkType);
  const std::string type = it == kNames.end() ? std::to_string(linkType) : it->second;
  return "interface '" + name + "' has no Ethernet header (link type " + type +
         ") and the capture program reads Ethernet frames: capture on the interface where the traffic arrives "
         "as Ethernet (the node's NIC, a pod's veth)";
}

std::string InterfaceWatcher::checkNames(const std::vector<std::string>& patterns, bool tlsProbes) {
  if (patterns.empty()) {
    return "no interface to capture on (give --interface NAME or a pattern such as 'veth*')";
  }
  for (const auto& name : patterns) {
    if (isPattern(name)) {
      continue;
    }
    if (if_nametoindex(name.c_str()) == 0) {
      return "unknown interface '" + name + "' (see `ip link` for the interfaces of this host)";
    }
    if (std::string why = notEthernetReason(name, linkTypeOf(name)); !why.empty() && !tlsProbes) {
      return why + " (with --tls, the HTTPS requests OpenSSL carries over it are mirrored from the probes, whatever "
                   "the interface; plain HTTP there is not)";
    }
  }
  return "";
}

bool InterfaceWatcher::skipped(int ifindex, const std::string& name, int linkType) {
  if (skipped_.contains(ifindex)) {
    return true;
  }
  // The notification's own type judges the device it is about; a look by
  // name could meet another device renamed into that name since.
  const std::string why = notEthernetReason(name, linkType >= 0 ? linkType : linkType_(name));
  if (why.empty()) {
    return false;
  }
  skipped_.insert(ifindex);
  base::bump(stats_.notEthernet);
  spdlog::warn("not capturing on {}: {}", name, why);
  return true;
}

bool InterfaceWatcher::wanted(const std::string& name) const {
  return std::any_of(patterns_.begin(), patterns_.end(),
                     [&](const std::string& p) { return fnmatch(p.c_str(), name.c_str(), 0) == 0; });
}

std::string InterfaceWatcher::attachExisting(InterfaceTarget& target) {
  for (const auto& [ifindex, name] : currentInterfaces()) {
    if (!wanted(name) || skipped(ifindex, name)) {
      continue;
    }
    if (std::string why = target.attach(ifindex, name); !why.empty()) {
      return why;
    }
  }
  if (target.attached().empty()) {
    spdlog::warn("no interface {} {} yet; attaching when one appears",
                 skipped_.empty() ? "matches" : "without a skipped link type matches",
                 fmt::format("'{}'", fmt::join(patterns_, "', '")));
  }
  return "";
}

bool InterfaceWatcher::follow(InterfaceTarget& target) {
  bool overflowed = false;
  std::vector<LinkEvent> events = links_.read(&overflowed);
  if (!following_) {
    return false;
  }
  if (!overflowed) {
    return apply(std::move(events), nullptr, target);
  }
  base::bump(stats_.linkRescans);
  const std::map<int, std::string> now = currentInterfaces();
  return apply(std::move(events), &now, target);
}

bool InterfaceWatcher::apply(std::vector<LinkEvent> events, const std::map<int, std::string>* rescan,
                             InterfaceTarget& target) {
  bool changed = rescan != nullptr && forgetMissing(*rescan, target, &events);
  if (rescan != nullptr) {
    std::erase_if(skipped_, [&](int ifindex) { return !rescan->contains(ifindex); });
  }
  for (const LinkEvent& ev : events) {
    const std::optional<std::string> have = target.attachedName(ev.ifindex);
    if (ev.kind == LinkEvent::Kind::kGone) {
      skipped_.erase(ev.ifindex);
      if (have) {
        target.forget(ev.ifindex, true);
        changed = true;
      }
      continue;
    }
    const bool want = !ev.name.empty() && wanted(ev.name);
    if (have) {
      if (ev.name.empty() || ev.name == *have) {
        continue;  // a state change (up/down, MTU...) of an interface we have
      }
      if (want) {
        target.rename(ev.ifindex, ev.name);
      } else {
        target.forget(ev.ifindex, false);  // renamed away from the patterns
      }
      changed = true;
      continue;
    }
    if (!want || skipped(ev.ifindex, ev.name, ev.linkType)) {
      continue;
    }
    if (std::string why = target.attach(ev.ifindex, ev.name); !why.empty()) {
      base::bump(stats_.attachErrors);
      spdlog::warn("cannot capture on new interface {}: {}", ev.name, why);
      continue;
    }
    changed = true;
  }
  return changed;
}

}  // namespace shadowtap::capture
