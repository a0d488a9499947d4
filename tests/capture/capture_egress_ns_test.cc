// Compare mode attached for real: with a compare rule, the capture also attaches
// to the egress hook (tc, tcx; XDP mode uses tcx there) and delivers the server's
// responses, marked fromServer, to the same sink as the requests. Without one no
// egress hook exists; a rule reload turns it on and off.

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "capture/capture.h"
#include "capture/netlink.h"
#include "netns.h"

namespace shadowtap::capturetest {
namespace {

using capture::AttachMode;
using capture::Capture;
using capture::CaptureOptions;
using capture::PortRule;

constexpr uint16_t kPort = 8080;
constexpr uint32_t kRuleId = 5;

std::string pattern(char tag, size_t n) {
  std::string s(n, tag);
  for (size_t i = 0; i < n; i += 97) {
    s[i] = static_cast<char>('a' + (i / 97) % 26);
  }
  return s;
}

// Payload by direction, placed by sequence number relative to each side's SYN.
class DirectionSink : public capture::SegmentSink {
 public:
  struct Side {
    bool haveSyn = false;
    uint32_t isn = 0;
    std::map<uint32_t, std::string> chunks;
    uint64_t segments = 0;
    bool keysOk = true;
    bool rulesOk = true;
  };

  void onSegment(const flow::Segment& s) override {
    // Another connection's record (a late ACK or retransmission of the one
    // before) is not this connection's, in whichever ring it is.
    if (clientPort != 0 && (s.fromServer ? s.key.dport : s.key.sport) != clientPort) {
      ++foreign;
      return;
    }
    Side& side = s.fromServer ? fromServer : toServer;
    ++side.segments;
    // Requests go to the service port, responses leave from it.
    side.keysOk = side.keysOk && (s.fromServer ? s.key.sport == kPort : s.key.dport == kPort);
    side.rulesOk = side.rulesOk && s.ruleId == kRuleId;
    if (s.flags & flow::kTcpSyn) {
      side.haveSyn = true;
      side.isn = s.seq;
    }
    // A retransmission may start where a longer segment started (re-cut to
    // the MSS, as a GSO segment is): keep the longer one, or its tail would
    // read as a hole.
    if (!s.payload.empty()) {
      std::string& chunk = side.chunks[s.seq];
      if (s.payload.size() > chunk.size()) {
        chunk.assign(s.payload.begin(), s.payload.end());
      }
    }
  }

  static std::string stream(const Side& side) {
    std::string out;
    if (!side.haveSyn) {
      return out;
    }
    for (const auto& [seq, bytes] : side.chunks) {
      const uint32_t off = seq - (side.isn + 1);
      if (off > out.size()) {
        return out;  // a hole
      }
      if (off + bytes.size() > out.size()) {
        out.append(bytes, out.size() - off, std::string::npos);
      }
    }
    return out;
  }

  Side toServer;
  Side fromServer;
  uint16_t clientPort = 0;  // when set, records of other connections only count here
  uint64_t foreign = 0;
};

CaptureOptions optionsFor(AttachMode mode, const std::string& ifname, bool compare) {
  CaptureOptions o;
  o.interfaces = {ifname};
  PortRule r;
  r.port = kPort;
  r.ruleId = kRuleId;
  r.compare = compare;
  o.rules.push_back(r);
  o.attach = mode;
  o.ringBufferBytes = 16u << 20;
  return o;
}


// Runs one exchange under `cap` and returns what was captured per direction.
DirectionSink exchangeUnder(Capture& cap, const VethPair& net, const std::string& req, const std::string& resp,
                            bool expectResponses) {
  DirectionSink sink;
  TcpExchange x(net, kPort, req, resp);
  EXPECT_TRUE(x.ok());
  pump(
      cap, sink,
      [&] {
        return x.done() && DirectionSink::stream(sink.toServer) == req &&
               (!expectResponses || DirectionSink::stream(sink.fromServer) == resp);
      },
      std::chrono::seconds(expectResponses ? 10 : 2));
  x.join();
  cap.consume(sink);
  EXPECT_EQ(x.clientReceived(), resp.size());
  return sink;
}

class CaptureEgressTest : public ::testing::TestWithParam<AttachMode> {};

TEST_P(CaptureEgressTest, ResponsesOfCompareRulesArriveMarked) {
  ST_REQUIRE_ROOT();
  VethPair net;
  ASSERT_TRUE(net.ok()) << "cannot build the namespaces";
  NetnsScope in(net.server);
  ASSERT_TRUE(in.ok());
  if (checkedTcxRefused(optionsFor(GetParam(), net.serverIf, true))) {
    return;
  }
  std::string error;
  auto cap = Capture::open(optionsFor(GetParam(), net.serverIf, true), &error);
  ASSERT_NE(cap, nullptr) << error;
  EXPECT_TRUE(cap->egressAttached());
  // XDP has no egress hook: tcx there when the kernel has it (6.6+), else tc.
  const AttachMode egress = GetParam() == AttachMode::kTc || !kernelHasTcx() ? AttachMode::kTc : AttachMode::kTcx;
  EXPECT_EQ(cap->egressMode(), egress) << kernelRelease();
  EXPECT_EQ(cap->stats().egressAttaches.load(), 1u);

  const std::string req = "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 200000\r\n\r\n" + pattern('q', 200000);
  const std::string resp = "HTTP/1.1 200 OK\r\nContent-Length: 300000\r\n\r\n" + pattern('r', 300000);
  DirectionSink sink = exchangeUnder(*cap, net, req, resp, true);
  const auto k = cap->kernelCounters();
  // Seen once in the 6.1 guest under TCG (tc variant, a loaded CI): the first
  // ~96,000 request bytes arrived, then a hole, most likely a retransmission
  // that replaced a longer segment of the same start in the sink (now kept).
  // Say whether the kernel copied the bytes (a reader bug) or never saw them.
  const std::string sent = DirectionSink::stream(sink.toServer);
  EXPECT_EQ(sent, req) << "every request byte, in order: " << sent.size() << " of " << req.size() << "; "
                       << sink.toServer.segments << " segments, " << sink.toServer.chunks.size()
                       << " with payload, " << sink.foreign << " foreign; kernel ingress seen " << k.seen
                       << ", matched " << k.matched << ", copied " << k.copied << " (" << k.copiedBytes
                       << " bytes), ring full " << k.ringbufFull << ", truncated " << k.truncated << ", malformed "
                       << k.malformed;
  // Seen once in the 6.1 guest under TCG (xdp variant): the first 75,296 bytes
  // arrived, then a hole, with nothing lost to a full ring. On failure say
  // whether the kernel copied the bytes (a reader bug) or never saw them.
  const std::string got = DirectionSink::stream(sink.fromServer);
  EXPECT_EQ(got, resp) << "every response byte, in order: " << got.size() << " of " << resp.size()
                       << " in order; " << sink.fromServer.segments << " segments, " << sink.fromServer.chunks.size()
                       << " with payload; kernel egress seen " << k.egressSeen << ", matched " << k.egressMatched
                       << ", copied " << k.egressCopied << " (" << k.egressCopiedBytes << " bytes), truncated "
                       << k.truncated << ", malformed " << k.malformed << ", no ring " << k.noRing;
  EXPECT_TRUE(sink.toServer.keysOk && sink.fromServer.keysOk);
  EXPECT_TRUE(sink.toServer.rulesOk && sink.fromServer.rulesOk);
  EXPECT_EQ(cap->stats().fromServerRecords.load(), sink.fromServer.segments);
  EXPECT_GT(k.egressCopied, 0u);
  EXPECT_EQ(k.egressSampledOut, 0u);
  EXPECT_EQ(k.ringbufFull, 0u);
  EXPECT_EQ(cap->stats().badRecords.load(), 0u);
}

TEST_P(CaptureEgressTest, NoEgressHookWithoutCompareAndReloadTogglesIt) {
  ST_REQUIRE_ROOT();
  VethPair net;
  ASSERT_TRUE(net.ok()) << "cannot build the namespaces";
  NetnsScope in(net.server);
  ASSERT_TRUE(in.ok());
  CaptureOptions o = optionsFor(GetParam(), net.serverIf, false);
  if (checkedTcxRefused(o)) {
    return;
  }
  std::string error;
  auto cap = Capture::open(o, &error);
  ASSERT_NE(cap, nullptr) << error;
  EXPECT_FALSE(cap->egressAttached());
  const std::string req = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  const std::string resp = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

  DirectionSink off = exchangeUnder(*cap, net, req, resp, false);
  EXPECT_EQ(DirectionSink::stream(off.toServer), req);
  EXPECT_EQ(off.fromServer.segments, 0u);
  EXPECT_EQ(cap->kernelCounters().egressSeen, 0u) << "no egress program runs without compare";

  o.rules[0].compare = true;
  ASSERT_EQ(cap->updateRules(o.rules), "");
  EXPECT_TRUE(cap->egressAttached());
  DirectionSink on = exchangeUnder(*cap, net, req, resp, true);
  EXPECT_EQ(DirectionSink::stream(on.fromServer), resp);

  o.rules[0].compare = false;
  ASSERT_EQ(cap->updateRules(o.rules), "");
  EXPECT_FALSE(cap->egressAttached());
  const uint64_t seen = cap->kernelCounters().egressSeen;
  DirectionSink offAgain = exchangeUnder(*cap, net, req, resp, false);
  EXPECT_EQ(offAgain.fromServer.segments, 0u);
  EXPECT_EQ(cap->kernelCounters().egressSeen, seen);
  if (GetParam() == AttachMode::kTc) {
    std::string why;
    EXPECT_TRUE(capture::dumpIngressFilters(if_nametoindex(net.serverIf.c_str()), &why, true).empty()) << why;
  }
}

// Workers: each reads its own ring buffer, and a connection's records, requests
// and responses alike, all arrive in the ring of one worker. Over a dozen
// connections both workers get some.
TEST_P(CaptureEgressTest, EachConnectionBothDirectionsInOneWorkersRing) {
  ST_REQUIRE_ROOT();
  VethPair net;
  ASSERT_TRUE(net.ok()) << "cannot build the namespaces";
  NetnsScope in(net.server);
  ASSERT_TRUE(in.ok());
  CaptureOptions o = optionsFor(GetParam(), net.serverIf, true);
  o.workers = 2;
  if (checkedTcxRefused(o)) {
    return;
  }
  std::string error;
  auto cap = Capture::open(o, &error);
  ASSERT_NE(cap, nullptr) << error;
  ASSERT_EQ(cap->workers(), 2u);
  std::array<int, 2> connections{};
  // At least 12 connections, more until each worker has had one: 12 flows
  // all hash to one of two workers once in 2,048 runs (seen in a 6.12 guest).
  int opened = 0;
  for (int i = 0; i < 64 && (i < 12 || connections[0] == 0 || connections[1] == 0); ++i) {
    ++opened;
    const std::string req = "POST /" + std::to_string(i) + " HTTP/1.1\r\nContent-Length: 30000\r\n\r\n" +
                            pattern('q', 30000);
    const std::string resp = "HTTP/1.1 200 OK\r\nContent-Length: 40000\r\n\r\n" + pattern('r', 40000);
    std::array<DirectionSink, 2> sinks;
    TcpExchange x(net, kPort, req, resp);
    ASSERT_TRUE(x.ok());
    for (DirectionSink& s : sinks) {
      s.clientPort = x.clientPort();
    }
    auto whole = [&](const DirectionSink& s) {
      return DirectionSink::stream(s.toServer) == req && DirectionSink::stream(s.fromServer) == resp;
    };
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline && !(x.done() && (whole(sinks[0]) || whole(sinks[1])))) {
      pollfd p{cap->fd(), POLLIN, 0};
      poll(&p, 1, 20);
      cap->followInterfaces();
      for (uint32_t w = 0; w < 2; ++w) {
        cap->ring(w).consume(sinks[w]);
      }
    }
    x.join();
    for (uint32_t w = 0; w < 2; ++w) {
      cap->ring(w).consume(sinks[w]);
    }
    const int worker = whole(sinks[0]) ? 0 : 1;
    EXPECT_TRUE(whole(sinks[worker])) << "connection " << i << ": every byte of both directions in one ring";
    const DirectionSink& other = sinks[1 - worker];
    EXPECT_EQ(other.toServer.segments + other.fromServer.segments, 0u)
        << "connection " << i << " has records in both workers' rings";
    if (HasFailure()) {
      for (uint32_t w = 0; w < 2; ++w) {
        ADD_FAILURE() << "connection " << i << " (client port " << x.clientPort() << "), worker " << w << ": "
                      << sinks[w].toServer.segments << " segments to the server (syn " << sinks[w].toServer.haveSyn
                      << ", " << DirectionSink::stream(sinks[w].toServer).size() << " of " << req.size()
                      << " bytes), " << sinks[w].fromServer.segments << " from it (syn "
                      << sinks[w].fromServer.haveSyn << ", " << DirectionSink::stream(sinks[w].fromServer).size()
                      << " of " << resp.size() << " bytes), " << sinks[w].foreign << " of other connections";
      }
      break;
    }
    ++connections[worker];
  }
  EXPECT_GT(connections[0], 0) << opened << " connections, none for worker 0";
  EXPECT_GT(connections[1], 0) << opened << " connections, none for worker 1";
  const auto k = cap->kernelCounters();
  EXPECT_EQ(k.noRing, 0u);
  EXPECT_EQ(k.ringbufFull, 0u);
}

INSTANTIATE_TEST_SUITE_P(Modes, CaptureEgressTest,
                         ::testing::Values(AttachMode::kTc, AttachMode::kTcx, AttachMode::kXdp),
                         [](const auto& info) { return std::string(capture::attachModeName(info.param)); });

}  // namespace
}  // namespace shadowtap::capturetest
