// What the interface watcher does with link notifications, against a fake set
// of attached interfaces (no netlink, no root).

#include "capture/interface_watcher.h"

#include <gtest/gtest.h>
#include <net/if_arp.h>

#include <map>
#include <set>
#include <string>
#include <vector>

namespace shadowtap::capture {
namespace {

// Records what the watcher asked for and plays the attached set.
class FakeInterfaces : public InterfaceTarget {
 public:
  std::optional<std::string> attachedName(int ifindex) const override {
    auto it = attached_.find(ifindex);
    return it == attached_.end() ? std::nullopt : std::optional<std::string>(it->second);
  }
  std::map<int, std::string> attached() const override { return attached_; }
  std::string attach(int ifindex, const std::string& name) override {
    calls.push_back("attach " + std::to_string(ifindex) + " " + name);
    if (refuse.count(name)) {
      return "refused";
    }
    attached_[ifindex] = name;
    return "";
  }
  void forget(int ifindex, bool gone) override {
    calls.push_back("forget " + std::to_string(ifindex) + (gone ? " gone" : " unmatched"));
    attached_.erase(ifindex);
  }
  void rename(int ifindex, const std::string& name) override {
    calls.push_back("rename " + std::to_string(ifindex) + " " + name);
    attached_[ifindex] = name;
  }

  std::map<int, std::string> attached_;
  std::set<std::string> refuse;
  std::vector<std::string> calls;
};

LinkEvent present(int ifindex, std::string name) { return {LinkEvent::Kind::kPresent, ifindex, std::move(name)}; }
LinkEvent gone(int ifindex) { return {LinkEvent::Kind::kGone, ifindex, ""}; }

class CaptureInterfaceWatcherTest : public ::testing::Test {
 protected:
  CaptureStats stats;
  InterfaceWatcher watcher{{"veth*", "eth0"}, stats};
  FakeInterfaces ifs;
};

TEST_F(CaptureInterfaceWatcherTest, MatchesNamesAndPatterns) {
  EXPECT_TRUE(watcher.wanted("eth0"));
  EXPECT_TRUE(watcher.wanted("veth12ab"));
  EXPECT_FALSE(watcher.wanted("eth1"));
  EXPECT_FALSE(watcher.wanted("lo"));
}

TEST_F(CaptureInterfaceWatcherTest, NewMatchingInterfacesAreAttachedOthersIgnored) {
  EXPECT_TRUE(watcher.apply({present(5, "veth1"), present(6, "lo"), present(7, "eth0")}, nullptr, ifs));
  EXPECT_EQ(ifs.calls, (std::vector<std::string>{"attach 5 veth1", "attach 7 eth0"}));
  EXPECT_FALSE(watcher.apply({present(6, "lo")}, nullptr, ifs)) << "nothing changed";
}

TEST_F(CaptureInterfaceWatcherTest, StateChangesOfAttachedInterfacesChangeNothing) {
  ifs.attached_ = {{5, "veth1"}};
  // Up/down and MTU changes come as RTM_NEWLINK with the same name (or none).
  EXPECT_FALSE(watcher.apply({present(5, "veth1"), present(5, "")}, nullptr, ifs));
  EXPECT_TRUE(ifs.calls.empty());
}

TEST_F(CaptureInterfaceWatcherTest, RenamesFollowThePatterns) {
  ifs.attached_ = {{5, "veth1"}, {6, "veth2"}};
  EXPECT_TRUE(watcher.apply({present(5, "veth9"), present(6, "pod0"), present(6, "veth3")}, nullptr, ifs));
  // Renamed within the patterns: renamed. Renamed away: forgotten, and attached
  // again once a later rename brings it back.
  EXPECT_EQ(ifs.calls,
            (std::vector<std::string>{"rename 5 veth9", "forget 6 unmatched", "attach 6 veth3"}));
}

TEST_F(CaptureInterfaceWatcherTest, RemovedInterfacesAreForgottenAsGone) {
  ifs.attached_ = {{5, "veth1"}};
  EXPECT_TRUE(watcher.apply({gone(5), gone(9)}, nullptr, ifs));
  EXPECT_EQ(ifs.calls, (std::vector<std::string>{"forget 5 gone"}));
}

TEST_F(CaptureInterfaceWatcherTest, AFailedAttachIsCountedAndTheRestGoesOn) {
  ifs.refuse = {"veth1"};
  EXPECT_TRUE(watcher.apply({present(5, "veth1"), present(6, "veth2")}, nullptr, ifs));
  EXPECT_EQ(ifs.calls, (std::vector<std::string>{"attach 5 veth1", "attach 6 veth2"}));
  EXPECT_EQ(stats.attachErrors.load(), 1u);
  EXPECT_EQ(ifs.attached_, (std::map<int, std::string>{{6, "veth2"}}));
}

// A tun, WireGuard or IP tunnel device has no Ethernet header, which the
// capture program reads: matching ones are skipped, logged and counted once
// however many notifications they send, and an ifindex is judged anew after
// its interface is gone.
TEST(CaptureInterfaceWatcherLinkTypes, InterfacesWithoutEthernetAreSkippedOnceAndCounted) {
  CaptureStats stats;
  std::map<std::string, int> types = {{"veth1", ARPHRD_ETHER}, {"veth2", ARPHRD_NONE}, {"veth3", ARPHRD_TUNNEL}};
  std::vector<std::string> looked;
  InterfaceWatcher watcher({"veth*"}, stats, [&](const std::string& name) {
    looked.push_back(name);
    auto it = types.find(name);
    return it == types.end() ? -1 : it->second;
  });
  FakeInterfaces ifs;
  EXPECT_TRUE(watcher.apply({present(5, "veth1"), present(6, "veth2"), present(7, "veth3")}, nullptr, ifs));
  EXPECT_EQ(ifs.calls, (std::vector<std::string>{"attach 5 veth1"}));
  EXPECT_EQ(stats.notEthernet.load(), 2u);
  EXPECT_EQ(stats.attachErrors.load(), 0u);
  // Up/down and MTU changes of a skipped interface: no new look, no new count.
  looked.clear();
  EXPECT_FALSE(watcher.apply({present(6, "veth2"), present(6, ""), present(7, "veth3")}, nullptr, ifs));
  EXPECT_TRUE(looked.empty());
  EXPECT_EQ(stats.notEthernet.load(), 2u);
  // Gone, and its ifindex taken by an Ethernet interface: attached.
  types["veth4"] = ARPHRD_ETHER;
  EXPECT_TRUE(watcher.apply({gone(6), present(6, "veth4")}, nullptr, ifs));
  EXPECT_EQ(ifs.attached_, (std::map<int, std::string>{{5, "veth1"}, {6, "veth4"}}));
  // An unknown type (-1: the interface went before the look) is tried.
  EXPECT_TRUE(watcher.apply({present(8, "veth8")}, nullptr, ifs));
  EXPECT_EQ(ifs.attached_.count(8), 1u);
  // A rescan forgets skipped interfaces that are no longer there.
  types["veth3"] = ARPHRD_ETHER;
  const std::map<int, std::string> now = {{5, "veth1"}, {6, "veth4"}, {8, "veth8"}};
  watcher.apply({}, &now, ifs);
  EXPECT_TRUE(watcher.apply({present(7, "veth3")}, nullptr, ifs));
  EXPECT_EQ(ifs.attached_.count(7), 1u);
  EXPECT_EQ(stats.notEthernet.load(), 2u);
}

// A notification carries its device's link type: that judges the device, not
// a look by name, which could meet another device renamed into the name since.
TEST(CaptureInterfaceWatcherLinkTypes, TheNotificationsOwnLinkTypeDecides) {
  CaptureStats stats;
  std::vector<std::string> looked;
  InterfaceWatcher watcher({"veth*"}, stats, [&](const std::string& name) {
    looked.push_back(name);
    return ARPHRD_ETHER;  // what the name holds by the time we would look
  });
  FakeInterfaces ifs;
  LinkEvent tun = present(9, "veth9");
  tun.linkType = ARPHRD_NONE;
  LinkEvent eth = present(10, "veth10");
  eth.linkType = ARPHRD_ETHER;
  EXPECT_TRUE(watcher.apply({tun, eth}, nullptr, ifs));
  EXPECT_EQ(ifs.calls, (std::vector<std::string>{"attach 10 veth10"}));
  EXPECT_EQ(stats.notEthernet.load(), 1u);
  EXPECT_TRUE(looked.empty()) << "no look by name when the notification says";
  // A rescan's list has names only: then the name is looked up.
  const std::map<int, std::string> now = {{10, "veth10"}, {11, "veth11"}};
  EXPECT_TRUE(watcher.apply({}, &now, ifs));
  EXPECT_EQ(looked, (std::vector<std::string>{"veth11"}));
  EXPECT_EQ(ifs.attached_.count(11), 1u);
}

TEST(CaptureInterfaceWatcherLinkTypes, TheReasonNamesTheInterfaceTheTypeAndWhereToCaptureInstead) {
  EXPECT_EQ(notEthernetReason("eth0", ARPHRD_ETHER), "");
  EXPECT_EQ(notEthernetReason("lo", ARPHRD_LOOPBACK), "") << "loopback frames carry an Ethernet header";
  EXPECT_EQ(notEthernetReason("gone0", -1), "");
  EXPECT_EQ(notEthernetReason("wg0", ARPHRD_NONE),
            "interface 'wg0' has no Ethernet header (link type none: a tun or WireGuard device) and the capture "
            "program reads Ethernet frames: capture on the interface where the traffic arrives as Ethernet (the "
            "node's NIC, a pod's veth)");
  EXPECT_NE(notEthernetReason("t", 4242).find("(link type 4242)"), std::string::npos);
  EXPECT_NE(notEthernetReason("ipip0", ARPHRD_TUNNEL).find("(link type ipip)"), std::string::npos);
}

TEST_F(CaptureInterfaceWatcherTest, ARescanReplacesLostNotifications) {
  // Attached: 5 (still there), 6 (gone), 7 (renamed to another matching name),
  // 8 (renamed away). Present: 5, 7, 8, and a new 9.
  ifs.attached_ = {{5, "veth5"}, {6, "veth6"}, {7, "veth7"}, {8, "veth8"}};
  const std::map<int, std::string> now = {{5, "veth5"}, {7, "veth77"}, {8, "pod8"}, {9, "veth9"}, {1, "lo"}};
  EXPECT_TRUE(watcher.apply({present(42, "veth42")}, &now, ifs)) << "the events read are replaced by the list";
  EXPECT_EQ(ifs.calls, (std::vector<std::string>{"forget 6 gone", "forget 7 unmatched", "forget 8 unmatched",
                                                 "attach 7 veth77", "attach 9 veth9"}));
  EXPECT_EQ(ifs.attached_, (std::map<int, std::string>{{5, "veth5"}, {7, "veth77"}, {9, "veth9"}}));
}

TEST_F(CaptureInterfaceWatcherTest, NothingToCaptureOnIsSaid) {
  EXPECT_NE(InterfaceWatcher::checkNames({}).find("no interface"), std::string::npos);
  EXPECT_NE(InterfaceWatcher::checkNames({"st-no-such-if0"}).find("unknown interface 'st-no-such-if0'"),
            std::string::npos);
  EXPECT_EQ(InterfaceWatcher::checkNames({"lo"}), "");
  EXPECT_EQ(InterfaceWatcher::checkNames({"st-no-such-*"}), "") << "a pattern may match nothing yet";
}

}  // namespace
}  // namespace shadowtap::capture
