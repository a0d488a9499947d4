// Capture attached for real, in network namespaces over a veth pair: every attach
// mode (tc, tcx, xdp, auto) captures every byte of large transfers whose sender
// GSO makes 64 KiB skbs; counting programs attached before and after ours still
// see every packet; a SIGKILLed run's filter is removed by name while a foreign
// filter stays; interfaces matching a pattern are attached when they appear and
// forgotten when they go.

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <xdp/libxdp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "capture/capture.h"
#include "capture/freplace_probe.h"
#include "capture/interface_watcher.h"
#include "capture/netlink.h"
#include "netns.h"
#include "shadowtap/capture_abi.h"  // our programs' names, to find them in the kernel
#include "testing_noop_tc.skel.h"
#include "testing_noop_xdp.skel.h"

namespace shadowtap::capturetest {
namespace {

using capture::AttachMode;
using capture::Capture;
using capture::CaptureOptions;

constexpr uint16_t kPort = 8080;
constexpr uint32_t kRuleId = 3;

std::vector<uint8_t> body(size_t n) {
  std::vector<uint8_t> b(n);
  for (size_t i = 0; i < n; ++i) {
    b[i] = static_cast<uint8_t>((i * 131 + (i >> 12)) & 0xff);
  }
  return b;
}

// Keeps the client->server payload of every captured segment to port kPort.
class CollectingSink : public capture::SegmentSink {
 public:
  void onSegment(const flow::Segment& s) override {
    if (s.key.dport != kPort) {
      return;
    }
    if (s.flags & flow::kTcpSyn) {
      isn_ = s.seq;
      haveSyn_ = true;
    }
    maxPayload = std::max(maxPayload, s.payload.size());
    if (!s.payload.empty()) {
      chunks_.emplace_back(s.seq, std::vector<uint8_t>(s.payload.begin(), s.payload.end()));
    }
  }

  // Bytes of `expect` covered by captured payload with the right content.
  size_t covered(const std::vector<uint8_t>& expect, size_t* mismatched) const {
    *mismatched = 0;
    if (!haveSyn_) {
      return 0;
    }
    std::vector<bool> seen(expect.size());
    for (const auto& [seq, bytes] : chunks_) {
      const uint32_t off = seq - (isn_ + 1);
      for (size_t i = 0; i < bytes.size() && off + i < expect.size(); ++i) {
        if (bytes[i] != expect[off + i]) {
          ++*mismatched;
        }
        seen[off + i] = true;
      }
    }
    return static_cast<size_t>(std::count(seen.begin(), seen.end(), true));
  }

  size_t maxPayload = 0;

 private:
  bool haveSyn_ = false;
  uint32_t isn_ = 0;
  std::vector<std::pair<uint32_t, std::vector<uint8_t>>> chunks_;
};

CaptureOptions optionsFor(AttachMode mode, std::vector<std::string> interfaces) {
  CaptureOptions o;
  o.interfaces = std::move(interfaces);
  o.rules.push_back({kPort, kRuleId, 10000, std::nullopt});
  o.attach = mode;
  o.ringBufferBytes = 32u << 20;
  return o;
}


class CaptureAttachTest : public ::testing::TestWithParam<AttachMode> {};

// Every byte of a large transfer is captured in every mode; with tc/tcx the
// sender's GSO hands 64 KiB skbs across the veth and they are chunked, not cut.
TEST_P(CaptureAttachTest, LargeTransferIsCapturedWhole) {
  ST_REQUIRE_ROOT();
  VethPair net;
  ASSERT_TRUE(net.ok()) << "cannot build the namespaces";
  NetnsScope in(net.server);
  ASSERT_TRUE(in.ok());
  if (checkedTcxRefused(optionsFor(GetParam(), {"st4s*"}))) {
    return;
  }
  std::string error;
  auto cap = Capture::open(optionsFor(GetParam(), {"st4s*"}), &error);
  ASSERT_NE(cap, nullptr) << error;
  ASSERT_EQ(cap->attachedInterfaces(), std::vector<std::string>{net.serverIf});
  if (GetParam() == AttachMode::kAuto) {
    EXPECT_EQ(cap->attachMode(), kernelHasTcx() ? AttachMode::kTcx : AttachMode::kTc)
        << "auto: tcx on 6.6+, else tc; this is " << kernelRelease();
  } else {
    EXPECT_EQ(cap->attachMode(), GetParam());
  }

  const std::vector<uint8_t> data = body(8u << 20);
  CollectingSink sink;
  TcpExchange t(net, kPort, std::string(data.begin(), data.end()));
  ASSERT_TRUE(t.ok());
  size_t mismatched = 0;
  const bool all = pump(
      *cap, sink, [&] { return t.done() && sink.covered(data, &mismatched) == data.size(); },
      std::chrono::seconds(20));
  t.join();
  cap->consume(sink);
  const size_t covered = sink.covered(data, &mismatched);
  const auto k = cap->kernelCounters();
  EXPECT_TRUE(all);
  EXPECT_EQ(t.serverReceived(), data.size());
  EXPECT_EQ(covered, data.size()) << "captured records must cover every byte";
  EXPECT_EQ(mismatched, 0u);
  EXPECT_EQ(k.truncated, 0u);
  EXPECT_EQ(k.ringbufFull, 0u);
  EXPECT_EQ(cap->stats().badRecords.load(), 0u);
  // The sender's GSO hands 64 KiB skbs across the veth; generic (skb-mode) XDP
  // sees them whole too, so every mode must chunk, not cut.
  EXPECT_GT(sink.maxPayload, 16384u) << "expected GSO skbs far above the 1500-byte MTU";
  if (GetParam() == AttachMode::kXdp) {
    // Without libxdp's dispatcher the capture still works but must say so.
    const capture::FreplaceProbe probe = capture::probeFreplace();
    EXPECT_EQ(cap->stats().xdpWithoutDispatcher.load(), probe.works() ? 0u : 1u) << probe.detail;
  }
  std::printf("[ info ] mode=%s records=%lu polls=%lu empty_polls=%lu forced_wakeups=%lu max_payload=%zu "
              "copied=%lu bytes=%lu\n",
              capture::attachModeName(cap->attachMode()), (unsigned long)cap->stats().records.load(),
              (unsigned long)cap->stats().polls.load(), (unsigned long)cap->stats().emptyPolls.load(),
              (unsigned long)k.wakeups, sink.maxPayload, (unsigned long)k.copied,
              (unsigned long)k.copiedBytes);
}

INSTANTIATE_TEST_SUITE_P(Modes, CaptureAttachTest,
                         ::testing::Values(AttachMode::kTc, AttachMode::kTcx, AttachMode::kXdp, AttachMode::kAuto),
                         [](const auto& info) { return capture::attachModeName(info.param); });

// A counting program before ours and one after ours on the same hook.
class Counters {
 public:
  virtual ~Counters() = default;
  virtual uint64_t before() = 0;
  virtual uint64_t after() = 0;
};

uint64_t noopHits(bpf_map* m) {
  uint32_t key = 0;
  uint64_t v = 0;
  bpf_map__lookup_elem(m, &key, sizeof(key), &v, sizeof(v), 0);
  return v;
}

class CoexistenceTest : public ::testing::TestWithParam<AttachMode> {};

TEST_P(CoexistenceTest, OthersBeforeAndAfterOursSeeEveryPacket) {
  ST_REQUIRE_ROOT();
  VethPair net;
  ASSERT_TRUE(net.ok());
  NetnsScope in(net.server);
  ASSERT_TRUE(in.ok());
  const int ifindex = static_cast<int>(if_nametoindex(net.serverIf.c_str()));
  const AttachMode mode = GetParam();

  testing_noop_tc* tcBefore = nullptr;
  testing_noop_tc* tcAfter = nullptr;
  testing_noop_xdp* xBefore = nullptr;
  testing_noop_xdp* xAfter = nullptr;
  xdp_program* xpBefore = nullptr;
  xdp_program* xpAfter = nullptr;
  int linkBefore = -1;
  int linkAfter = -1;
  auto cleanup = std::shared_ptr<void>(nullptr, [&](void*) {
    for (int fd : {linkBefore, linkAfter}) {
      if (fd >= 0) {
        close(fd);
      }
    }
    for (xdp_program* p : {xpBefore, xpAfter}) {
      if (p) {
        xdp_program__detach(p, ifindex, XDP_MODE_SKB, 0);
        xdp_program__close(p);
      }
    }
    for (auto* s : {xBefore, xAfter}) {
      testing_noop_xdp__destroy(s);
    }
    for (auto* s : {tcBefore, tcAfter}) {
      testing_noop_tc__destroy(s);
    }
  });

  auto tcProg = [&](testing_noop_tc** s) {
    *s = testing_noop_tc__open_and_load();
    return *s ? bpf_program__fd((*s)->progs.st_testing_noop) : -1;
  };
  auto tcAttach = [&](testing_noop_tc** s, uint32_t prio) {
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
    bpf_tc_hook_create(&hook);
    LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = tcProg(s), .handle = 1, .priority = prio);
    return bpf_tc_attach(&hook, &opts);
  };
  auto tcxAttach = [&](testing_noop_tc** s) {
    return bpf_link_create(tcProg(s), ifindex, static_cast<bpf_attach_type>(46 /* BPF_TCX_INGRESS */), nullptr);
  };
  auto xdpAttach = [&](testing_noop_xdp** s, xdp_program** p, unsigned prio) {
    *s = testing_noop_xdp__open();
    if (!*s) {
      return -1;
    }
    *p = xdp_program__from_bpf_obj((*s)->obj, "xdp");
    if (libxdp_get_error(*p)) {
      *p = nullptr;
      return -1;
    }
    xdp_program__set_run_prio(*p, prio);
    return xdp_program__attach(*p, ifindex, XDP_MODE_SKB, 0);
  };

  CaptureOptions o = optionsFor(mode, {net.serverIf});
  o.tcPriority = 5;
  if (checkedTcxRefused(o)) {
    return;
  }
  if (mode == AttachMode::kTc) {
    ASSERT_EQ(tcAttach(&tcBefore, 1), 0);
  } else if (mode == AttachMode::kTcx) {
    linkBefore = tcxAttach(&tcBefore);
    ASSERT_GE(linkBefore, 0) << std::strerror(errno);
  } else {
    ASSERT_EQ(xdpAttach(&xBefore, &xpBefore, 10), 0);
    // libxdp silently attaches a lone program without its dispatcher when the
    // kernel fails its freplace check; then no second program can join. Skip
    // only when the kernel itself refuses freplace to a fully privileged
    // process, which no code of ours can change; fail on anything else.
    xdp_multiprog* mp = xdp_multiprog__get_from_ifindex(ifindex);
    ASSERT_EQ(libxdp_get_error(mp), 0);
    const bool legacy = xdp_multiprog__is_legacy(mp);
    xdp_multiprog__close(mp);
    if (legacy) {
      const capture::FreplaceProbe probe = capture::probeFreplace();
      if (probe.refusedByKernel) {
        GTEST_SKIP() << "libxdp's multi-program dispatcher cannot work on this kernel: " << probe.detail
                     << ". libxdp fell back to a lone program, so XDP coexistence cannot be tested here.";
      }
      FAIL() << "libxdp attached the first program without its dispatcher; freplace probe: "
             << (probe.works() ? std::string("works") : probe.detail);
    }
  }
  std::string error;
  auto cap = Capture::open(o, &error);
  ASSERT_NE(cap, nullptr) << error;
  if (mode == AttachMode::kTc) {
    ASSERT_EQ(tcAttach(&tcAfter, 9), 0);
  } else if (mode == AttachMode::kTcx) {
    linkAfter = tcxAttach(&tcAfter);
    ASSERT_GE(linkAfter, 0) << std::strerror(errno);
  } else {
    EXPECT_EQ(cap->stats().xdpWithoutDispatcher.load(), 0u);
    ASSERT_EQ(xdpAttach(&xAfter, &xpAfter, 100), 0);
    // All three behind one dispatcher, in run-priority order: 10, ours (50), 100.
    xdp_multiprog* mp = xdp_multiprog__get_from_ifindex(ifindex);
    ASSERT_EQ(libxdp_get_error(mp), 0);
    std::vector<std::string> names;
    for (xdp_program* p = xdp_multiprog__next_prog(nullptr, mp); p; p = xdp_multiprog__next_prog(p, mp)) {
      names.emplace_back(xdp_program__name(p));
    }
    const bool legacy = xdp_multiprog__is_legacy(mp);
    xdp_multiprog__close(mp);
    EXPECT_FALSE(legacy);
    EXPECT_EQ(names, (std::vector<std::string>{"st_testing_noop_xdp", ST_PROG_XDP_NAME, "st_testing_noop_xdp"}));
  }
  auto hitsBefore = [&] { return tcBefore ? noopHits(tcBefore->maps.st_noop_hits) : noopHits(xBefore->maps.st_noop_xdp_hits); };
  auto hitsAfter = [&] { return tcAfter ? noopHits(tcAfter->maps.st_noop_hits) : noopHits(xAfter->maps.st_noop_xdp_hits); };
  const uint64_t b0 = hitsBefore();
  const uint64_t a0 = hitsAfter();
  const uint64_t s0 = cap->kernelCounters().seen;

  const std::vector<uint8_t> data = body(1u << 20);
  CollectingSink sink;
  {
    TcpExchange t(net, kPort, std::string(data.begin(), data.end()));
    ASSERT_TRUE(t.ok());
    pump(*cap, sink, [&] { return t.done(); }, std::chrono::seconds(10));
    t.join();
    EXPECT_EQ(t.serverReceived(), data.size()) << "traffic must flow through all three programs";
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // last ACK/FIN
  cap->consume(sink);
  const uint64_t before = hitsBefore() - b0;
  const uint64_t after = hitsAfter() - a0;
  const uint64_t ours = cap->kernelCounters().seen - s0;
  EXPECT_GT(ours, 10u);
  EXPECT_EQ(before, ours) << "program before ours";
  EXPECT_EQ(after, ours) << "program after ours";
  size_t mismatched = 0;
  EXPECT_EQ(sink.covered(data, &mismatched), data.size());
  cap.reset();
  // Ours is gone, theirs stay.
  if (mode == AttachMode::kTc) {
    std::string why;
    auto filters = capture::dumpIngressFilters(ifindex, &why);
    ASSERT_TRUE(why.empty()) << why;
    ASSERT_EQ(filters.size(), 2u);
    EXPECT_EQ(filters[0].priority + filters[1].priority, 10u);
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, CoexistenceTest, ::testing::Values(AttachMode::kTc, AttachMode::kTcx, AttachMode::kXdp),
                         [](const auto& info) { return capture::attachModeName(info.param); });

// A tc-mode run SIGKILLed while attached leaves its cls_bpf filter; the next run
// finds it by name at another priority and handle and removes it, and leaves a
// foreign filter alone.
TEST(StaleFilterTest, KilledRunsFilterIsRemovedForeignStays) {
  ST_REQUIRE_ROOT();
  VethPair net;
  ASSERT_TRUE(net.ok());
  NetnsScope in(net.server);
  ASSERT_TRUE(in.ok());
  const int ifindex = static_cast<int>(if_nametoindex(net.serverIf.c_str()));

  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    CaptureOptions o = optionsFor(AttachMode::kTc, {net.serverIf});
    o.tcPriority = 7;
    o.tcHandle = 0x77;
    std::string error;
    auto cap = Capture::open(o, &error);
    char c = cap ? 'y' : 'n';
    [[maybe_unused]] ssize_t w = write(ready[1], &c, 1);
    pause();
    _exit(0);
  }
  char c = 0;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  close(ready[0]);
  close(ready[1]);
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  ASSERT_EQ(c, 'y') << "the child could not attach";

  testing_noop_tc* foreign = testing_noop_tc__open_and_load();
  ASSERT_NE(foreign, nullptr);
  auto destroyForeign = std::shared_ptr<void>(nullptr, [&](void*) { testing_noop_tc__destroy(foreign); });
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
  LIBBPF_OPTS(bpf_tc_opts, fopts, .prog_fd = bpf_program__fd(foreign->progs.st_testing_noop), .handle = 1,
              .priority = 3);
  ASSERT_EQ(bpf_tc_attach(&hook, &fopts), 0);

  std::string why;
  auto filters = capture::dumpIngressFilters(ifindex, &why);
  ASSERT_TRUE(why.empty()) << why;
  ASSERT_EQ(filters.size(), 2u);
  auto find = [](const std::vector<capture::IngressFilter>& fs, uint32_t prio) {
    return std::find_if(fs.begin(), fs.end(), [&](const auto& f) { return f.priority == prio; });
  };
  ASSERT_NE(find(filters, 7), filters.end()) << "the killed run's filter is still there";
  EXPECT_EQ(find(filters, 7)->handle, 0x77u);
  EXPECT_EQ(find(filters, 7)->bpfName.rfind(ST_PROG_TC_NAME ":", 0), 0u) << find(filters, 7)->bpfName;

  for (AttachMode mode : {AttachMode::kTc, AttachMode::kTcx}) {
    SCOPED_TRACE(capture::attachModeName(mode));
    if (checkedTcxRefused(optionsFor(mode, {net.serverIf}))) {
      continue;
    }
    std::string error;
    auto cap = Capture::open(optionsFor(mode, {net.serverIf}), &error);  // priority 1, handle 0x5354
    ASSERT_NE(cap, nullptr) << error;
    filters = capture::dumpIngressFilters(ifindex, &why);
    EXPECT_EQ(find(filters, 7), filters.end()) << "stale filter not removed";
    ASSERT_NE(find(filters, 3), filters.end()) << "foreign filter touched";
    EXPECT_EQ(find(filters, 3)->bpfName.rfind("st_testing_noop", 0), 0u);
    EXPECT_EQ(filters.size(), mode == AttachMode::kTc ? 2u : 1u);
    EXPECT_EQ(cap->stats().staleRemoved.load(), mode == AttachMode::kTc ? 1u : 0u);
  }
  filters = capture::dumpIngressFilters(ifindex, &why);
  ASSERT_EQ(filters.size(), 1u) << "only the foreign filter is left";
  EXPECT_EQ(filters[0].priority, 3u);
}

bool attachedTo(const Capture& cap, const std::string& name) {
  const std::vector<std::string> v = cap.attachedInterfaces();
  return std::find(v.begin(), v.end(), name) != v.end();
}

// Interfaces matching a pattern are attached when they appear and forgotten
// when they go; others are left alone.
TEST(HotPlugTest, MatchingInterfacesAreFollowed) {
  ST_REQUIRE_ROOT();
  VethPair net;
  ASSERT_TRUE(net.ok());
  NetnsScope in(net.server);
  ASSERT_TRUE(in.ok());
  std::string error;
  auto cap = Capture::open(optionsFor(AttachMode::kAuto, {"sthp*", "st4srv0"}), &error);
  ASSERT_NE(cap, nullptr) << error;
  EXPECT_EQ(cap->attachedInterfaces(), std::vector<std::string>{"st4srv0"});

  CollectingSink sink;
  auto has = [&](const std::string& n) { return attachedTo(*cap, n); };
  ASSERT_EQ(sh("ip link add sthp0 type veth peer name other0"), 0);
  ASSERT_EQ(sh("ip link add sthp1 type veth peer name other1"), 0);
  EXPECT_TRUE(pump(*cap, sink, [&] { return has("sthp0") && has("sthp1"); }, std::chrono::seconds(5)));
  EXPECT_FALSE(has("other0"));
  EXPECT_EQ(cap->attachedInterfaces().size(), 3u);

  ASSERT_EQ(sh("ip link del sthp0"), 0);  // takes other0 along
  EXPECT_TRUE(pump(*cap, sink, [&] { return !has("sthp0"); }, std::chrono::seconds(5)));
  ASSERT_EQ(sh("ip link set sthp1 name renamed1"), 0);
  EXPECT_TRUE(pump(*cap, sink, [&] { return !has("sthp1") && !has("renamed1"); }, std::chrono::seconds(5)));
  EXPECT_EQ(cap->attachedInterfaces(), std::vector<std::string>{"st4srv0"});
  EXPECT_EQ(cap->stats().attaches.load(), 3u);
  EXPECT_EQ(cap->stats().forgotten.load(), 2u);
  EXPECT_EQ(cap->stats().attachErrors.load(), 0u);
  sh("ip link del renamed1");  // takes other1 along
}

// A tun device carries IP packets without an Ethernet header: named, the
// capture refuses to start and says where to capture instead; matched by a
// pattern, at start or later, it is skipped and counted while the rest is
// attached.
TEST(HotPlugTest, InterfacesWithoutEthernetAreRefusedByNameAndSkippedByPattern) {
  ST_REQUIRE_ROOT();
  VethPair net;
  ASSERT_TRUE(net.ok());
  NetnsScope in(net.server);
  ASSERT_TRUE(in.ok());
  // Without udev (the kernel matrix's guests) /dev/net/tun may be missing; the
  // kernel loads the tun module when the node is opened.
  ASSERT_EQ(sh("[ -e /dev/net/tun ] || { mkdir -p /dev/net && mknod /dev/net/tun c 10 200; }"), 0);
  ASSERT_EQ(sh("ip tuntap add dev sthptun0 mode tun"), 0) << "the tun driver is needed";
  std::string error;
  EXPECT_EQ(Capture::open(optionsFor(AttachMode::kAuto, {"st4srv0", "sthptun0"}), &error), nullptr);
  EXPECT_NE(error.find("interface 'sthptun0' has no Ethernet header (link type none"), std::string::npos) << error;
  EXPECT_EQ(capture::InterfaceWatcher::checkNames({"st4srv0", "sthptun0"}, true), "")
      << "with --tls the probes mirror what a tun's TLS carries: the tun is only skipped";

  auto cap = Capture::open(optionsFor(AttachMode::kAuto, {"sthp*", "st4srv0"}), &error);
  ASSERT_NE(cap, nullptr) << error;
  EXPECT_EQ(cap->attachedInterfaces(), std::vector<std::string>{"st4srv0"});
  EXPECT_EQ(cap->stats().notEthernet.load(), 1u);
  CollectingSink sink;
  auto has = [&](const std::string& n) { return attachedTo(*cap, n); };
  ASSERT_EQ(sh("ip tuntap add dev sthptun1 mode tun && ip link set sthptun1 up"), 0);
  ASSERT_EQ(sh("ip link add sthp0 type veth peer name other0"), 0);
  EXPECT_TRUE(pump(*cap, sink, [&] { return has("sthp0"); }, std::chrono::seconds(5)));
  EXPECT_FALSE(has("sthptun1"));
  EXPECT_EQ(cap->stats().notEthernet.load(), 2u) << "sthptun1 counted once, its up event included";
  EXPECT_EQ(cap->stats().attachErrors.load(), 0u);
  sh("ip link del sthp0; ip link del sthptun0; ip link del sthptun1");
}

}  // namespace
}  // namespace shadowtap::capturetest
