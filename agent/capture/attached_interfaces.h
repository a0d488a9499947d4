#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "capture/attach_mode.h"
#include "capture/attachment.h"
#include "capture/capture_stats.h"
#include "capture/interface_watcher.h"

namespace shadowtap::capture {

// The interfaces we capture on, each with its ingress attachment and, while
// some rule compares, its egress one. Attaching removes what a killed run of
// ours left first. Destruction detaches everything.
class AttachedInterfaces : public InterfaceTarget {
 public:
  AttachedInterfaces(AttachModes modes, AttachSettings settings, CaptureStats& stats)
      : modes_(modes), settings_(std::move(settings)), stats_(stats) {}

  // InterfaceTarget. attach(): ingress, and egress too while comparing (both
  // or neither: requests without their responses would only count as missing).
  std::optional<std::string> attachedName(int ifindex) const override;
  std::map<int, std::string> attached() const override;
  std::string attach(int ifindex, const std::string& name) override;
  void forget(int ifindex, bool gone) override;
  void rename(int ifindex, const std::string& name) override;

  // Compare mode. Egress hooks go on every interface, all or nothing (empty,
  // or why not; none stays attached then), and come off again.
  bool comparing() const { return comparing_; }
  void setComparing(bool comparing) { comparing_ = comparing; }
  [[nodiscard]] std::string attachEgressEverywhere();
  void detachEgressEverywhere();
  bool egressAttached() const;

  const AttachModes& modes() const { return modes_; }
  std::vector<std::string> names() const;
  // Detaches from every interface (counted as forgotten).
  void clear();

 private:
  struct Interface {
    std::string name;
    Attachment ingress;
    Attachment egress;
  };
  std::string attachEgress(Interface& iface, int ifindex);

  AttachModes modes_;
  AttachSettings settings_;
  CaptureStats& stats_;
  bool comparing_ = false;
  std::map<int, Interface> byIndex_;
};

}  // namespace shadowtap::capture
