#include "capture/attached_interfaces.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "base/counters.h"

namespace shadowtap::capture {

std::optional<std::string> AttachedInterfaces::attachedName(int ifindex) const {
  auto it = byIndex_.find(ifindex);
  if (it == byIndex_.end()) {
    return std::nullopt;
  }
  return it->second.name;
}

std::map<int, std::string> AttachedInterfaces::attached() const {
  std::map<int, std::string> out;
  for (const auto& [ifindex, iface] : byIndex_) {
    out.emplace(ifindex, iface.name);
  }
  return out;
}

std::vector<std::string> AttachedInterfaces::names() const {
  std::vector<std::string> out;
  for (const auto& [ifindex, iface] : byIndex_) {
    out.push_back(iface.name);
  }
  return out;
}

std::string AttachedInterfaces::attach(int ifindex, const std::string& name) {
  std::string why;
  const bool xdp = modes_.ingress == AttachMode::kXdp;
  base::bump(stats_.staleRemoved, static_cast<uint64_t>(removeLeftovers(ifindex, name, xdp, settings_.stateDir, &why)));
  if (!why.empty()) {
    return why;
  }
  Interface iface;
  iface.name = name;
  why = iface.ingress.attach(modes_.ingress, Hook::kIngress, ifindex, name, settings_);
  if (!why.empty()) {
    return why;
  }
  if (iface.ingress.xdpWithoutDispatcher()) {
    base::bump(stats_.xdpWithoutDispatcher);
  }
  spdlog::info("attached to {} ({})", name, iface.ingress.describe());
  base::bump(stats_.attaches);
  if (comparing_) {
    why = attachEgress(iface, ifindex);
    if (!why.empty()) {
      return why;  // `iface` and its ingress attachment go away here
    }
  }
  byIndex_.emplace(ifindex, std::move(iface));
  return "";
}

std::string AttachedInterfaces::attachEgress(Interface& iface, int ifindex) {
  if (iface.egress.attached()) {
    return "";
  }
  std::string why = iface.egress.attach(modes_.egress, Hook::kEgress, ifindex, iface.name, settings_);
  if (!why.empty()) {
    return why;
  }
  base::bump(stats_.egressAttaches);
  spdlog::info("attached to {} ({})", iface.name, iface.egress.describe());
  return "";
}

void AttachedInterfaces::forget(int ifindex, bool gone) {
  auto it = byIndex_.find(ifindex);
  if (it == byIndex_.end()) {
    return;
  }
  if (gone) {
    it->second.ingress.release();
    it->second.egress.release();
  }
  spdlog::info("{} {}: no longer capturing there", it->second.name, gone ? "disappeared" : "no longer matches");
  byIndex_.erase(it);
  base::bump(stats_.forgotten);
}

void AttachedInterfaces::rename(int ifindex, const std::string& name) {
  if (auto it = byIndex_.find(ifindex); it != byIndex_.end()) {
    it->second.name = name;
  }
}

std::string AttachedInterfaces::attachEgressEverywhere() {
  for (auto& [ifindex, iface] : byIndex_) {
    if (std::string why = attachEgress(iface, ifindex); !why.empty()) {
      detachEgressEverywhere();
      return why;
    }
  }
  return "";
}

void AttachedInterfaces::detachEgressEverywhere() {
  for (auto& [ifindex, iface] : byIndex_) {
    iface.egress.detach();
  }
}

bool AttachedInterfaces::egressAttached() const {
  return std::any_of(byIndex_.begin(), byIndex_.end(),
                     [](const auto& entry) { return entry.second.egress.attached(); });
}

void AttachedInterfaces::clear() {
  base::bump(stats_.forgotten, byIndex_.size());
  byIndex_.clear();
}

}  // namespace shadowtap::capture
