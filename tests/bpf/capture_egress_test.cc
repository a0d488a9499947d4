// Compare mode in the kernel: the egress program copies the responses (source
// port = the rule's port) of rules with ST_RULE_F_COMPARE, marks them
// ST_DIR_FROM_SERVER, samples with the same symmetric hash as the ingress program
// (so both directions of a connection agree), and leaves the ingress program's
// records and counters alone.

#include <set>
#include <utility>

#include "capture_fixture.h"

namespace shadowtap::bpftest {
namespace {

constexpr uint16_t kWeb = 8080;
const Ip4Addr kClient{198, 18, 0, 1};
const Ip4Addr kServer{198, 18, 1, 5};

Counters diff(const Counters& after, const Counters& before) {
  Counters d{};
  for (size_t i = 0; i < d.size(); ++i) {
    d[i] = after[i] - before[i];
  }
  return d;
}

class CaptureEgressTest : public CaptureFixture {
 protected:
  void SetUp() override {
    CaptureFixture::SetUp();
    if (IsSkipped() || HasFatalFailure()) {
      return;
    }
    ingressFd_ = progFd_;
    egressFd_ = bpf_program__fd(skel_->progs.st_capture_egr);
    ASSERT_GE(egressFd_, 0);
  }

  void setFlags(uint16_t port, uint32_t flags) {
    const uint32_t key = port;
    st_rule rule{};
    ASSERT_EQ(bpf_map__lookup_elem(rules_, &key, sizeof(key), &rule, sizeof(rule), 0), 0);
    rule.flags |= flags;
    ASSERT_EQ(bpf_map__update_elem(rules_, &key, sizeof(key), &rule, sizeof(rule), BPF_ANY), 0);
  }

  // A segment of the connection kClient:clientPort <-> kServer:kWeb, in either direction.
  static Bytes segment(bool fromServer, uint16_t clientPort, const Bytes& payload, Ip4Addr server = kServer) {
    const Bytes l4 = fromServer ? tcp(kWeb, clientPort, 5000, 100, ST_TCP_ACK | ST_TCP_PSH, payload)
                                : tcp(clientPort, kWeb, 100, 5000, ST_TCP_ACK | ST_TCP_PSH, payload);
    return fromServer ? ethernet(kEthIpv4, ipv4(kProtoTcp, server, kClient, l4))
                      : ethernet(kEthIpv4, ipv4(kProtoTcp, kClient, server, l4));
  }

  void runEgress(const Bytes& frame) {
    progFd_ = egressFd_;
    runUnchanged(frame);
    progFd_ = ingressFd_;
  }

  int ingressFd_ = -1;
  int egressFd_ = -1;
};

const Bytes kResponse = {'H', 'T', 'T', 'P', '/', '1', '.', '1', ' ', '2', '0', '0'};
const Bytes kRequest = {'G', 'E', 'T', ' ', '/'};

TEST_F(CaptureEgressTest, ResponsesOfCompareRulesAreCopiedAndMarked) {
  setRule(kWeb, 7, ST_SAMPLE_SCALE);
  setFlags(kWeb, ST_RULE_F_COMPARE);
  const Counters before = counters();
  runEgress(segment(true, 40000, kResponse));
  const std::vector<Record> recs = drain();
  const Counters d = diff(counters(), before);
  ASSERT_EQ(recs.size(), 1u);
  const st_segment& h = recs[0].hdr;
  EXPECT_EQ(h.direction, ST_DIR_FROM_SERVER);
  EXPECT_EQ(h.abi_version, SHADOWTAP_ABI_VERSION);
  EXPECT_EQ(h.rule_id, 7u);
  EXPECT_EQ(ntohs(h.sport), kWeb);
  EXPECT_EQ(ntohs(h.dport), 40000);
  EXPECT_EQ(0, std::memcmp(h.saddr, kServer.data(), 4));
  EXPECT_EQ(h.seq, 5000u);
  EXPECT_EQ(h.source, ST_SRC_WIRE);
  EXPECT_EQ(recs[0].payload, kResponse);
  EXPECT_EQ(d[ST_CNT_EGRESS_SEEN], 1u);
  EXPECT_EQ(d[ST_CNT_EGRESS_MATCHED], 1u);
  EXPECT_EQ(d[ST_CNT_EGRESS_COPIED], 1u);
  EXPECT_EQ(d[ST_CNT_EGRESS_COPIED_BYTES], kResponse.size());
  // The ingress side's counters are not touched by the egress program.
  EXPECT_EQ(d[ST_CNT_SEEN], 0u);
  EXPECT_EQ(d[ST_CNT_MATCHED], 0u);
  EXPECT_EQ(d[ST_CNT_COPIED], 0u);
  EXPECT_EQ(d[ST_CNT_COPIED_BYTES], 0u);
}

TEST_F(CaptureEgressTest, IngressRecordsOfCompareRulesAreMarkedToServer) {
  setRule(kWeb, 7, ST_SAMPLE_SCALE);
  setFlags(kWeb, ST_RULE_F_COMPARE);
  const Counters before = counters();
  runUnchanged(segment(false, 40000, kRequest));
  // A response seen by the ingress program is not its business (destination port 40000).
  runUnchanged(segment(true, 40000, kResponse));
  const std::vector<Record> recs = drain();
  const Counters d = diff(counters(), before);
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].hdr.direction, ST_DIR_TO_SERVER);
  EXPECT_EQ(recs[0].payload, kRequest);
  EXPECT_EQ(d[ST_CNT_SEEN], 2u);
  EXPECT_EQ(d[ST_CNT_COPIED], 1u);
  EXPECT_EQ(d[ST_CNT_EGRESS_SEEN], 0u);
}

TEST_F(CaptureEgressTest, NothingWithoutCompareOrFromOtherPorts) {
  setRule(kWeb, 7, ST_SAMPLE_SCALE);  // no compare flag
  const Counters before = counters();
  runEgress(segment(true, 40000, kResponse));
  EXPECT_TRUE(drain().empty());
  setFlags(kWeb, ST_RULE_F_COMPARE);
  runEgress(segment(false, 40000, kRequest));  // a request leaving: destination port is the rule's
  EXPECT_TRUE(drain().empty());
  runEgress(ethernet(kEthIpv4, ipv4(kProtoUdp, kServer, kClient, udp(kWeb, 40000, kResponse))));
  EXPECT_TRUE(drain().empty());
  runEgress(arpRequest());
  EXPECT_TRUE(drain().empty());
  const Counters d = diff(counters(), before);
  EXPECT_EQ(d[ST_CNT_EGRESS_SEEN], 4u);
  EXPECT_EQ(d[ST_CNT_EGRESS_MATCHED], 0u);
  EXPECT_EQ(d[ST_CNT_EGRESS_COPIED], 0u);
  // Egress parse failures are not counted by reason (they would double the ingress side's).
  EXPECT_EQ(d[ST_CNT_NOT_IP], 0u);
  EXPECT_EQ(d[ST_CNT_NOT_TCP], 0u);
}

TEST_F(CaptureEgressTest, BothDirectionsOfAConnectionAgreeOnTheSample) {
  setRule(kWeb, 7, ST_SAMPLE_SCALE / 2);
  setFlags(kWeb, ST_RULE_F_COMPARE);
  std::set<uint16_t> requests, responses;
  for (uint16_t port = 40000; port < 40200; ++port) {
    runUnchanged(segment(false, port, kRequest));
    for (const Record& r : drain()) {
      requests.insert(ntohs(r.hdr.sport));
    }
    runEgress(segment(true, port, kResponse));
    for (const Record& r : drain()) {
      EXPECT_EQ(r.hdr.direction, ST_DIR_FROM_SERVER);
      responses.insert(ntohs(r.hdr.dport));
    }
  }
  EXPECT_EQ(requests, responses);
  // 50 %: some of each, so the agreement above is not trivial.
  EXPECT_GT(requests.size(), 50u);
  EXPECT_LT(requests.size(), 150u);
  const Counters c = counters();
  EXPECT_EQ(c[ST_CNT_EGRESS_MATCHED], 200u);
  EXPECT_EQ(c[ST_CNT_EGRESS_SAMPLED_OUT] + c[ST_CNT_EGRESS_COPIED], 200u);
  EXPECT_EQ(c[ST_CNT_SAMPLED_OUT], c[ST_CNT_EGRESS_SAMPLED_OUT]);
}

TEST_F(CaptureEgressTest, NarrowedRulesMatchBySourceAddress) {
  setRule(kWeb, 7, ST_SAMPLE_SCALE);  // port-only fallback, no compare
  // 198.18.1.0/24 compares with its own rule id, as the agent writes it.
  st_prefix_key key{};
  key.prefixlen = ST_PREFIX_KEY_FIXED_BITS + 24;
  key.port = htons(kWeb);
  key.family = ST_FAMILY_IPV4;
  const Ip4Addr net{198, 18, 1, 0};
  std::memcpy(key.addr, net.data(), 4);
  const st_rule value{20, ST_SAMPLE_SCALE, ST_RULE_F_COMPARE};
  ASSERT_EQ(bpf_map__update_elem(prefixRules_, &key, sizeof(key), &value, sizeof(value), BPF_ANY), 0);
  setFlags(kWeb, ST_RULE_F_HAS_PREFIX);

  runEgress(segment(true, 40000, kResponse));  // from 198.18.1.5: narrowed, compares
  std::vector<Record> recs = drain();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].hdr.rule_id, 20u);
  runEgress(segment(true, 40000, kResponse, Ip4Addr{198, 18, 2, 5}));  // fallback rule 7 does not compare
  EXPECT_TRUE(drain().empty());
  const Counters c = counters();
  EXPECT_EQ(c[ST_CNT_EGRESS_MATCHED], 1u);
  EXPECT_EQ(c[ST_CNT_PREFIX_MATCHED], 1u);
}

TEST_F(CaptureEgressTest, LargeResponsesAreChunkedLikeRequests) {
  setRule(kWeb, 7, ST_SAMPLE_SCALE);
  setFlags(kWeb, ST_RULE_F_COMPARE);
  Bytes body(3000);
  for (size_t i = 0; i < body.size(); ++i) {
    body[i] = static_cast<uint8_t>(i * 7);
  }
  runEgress(segment(true, 40000, body));
  const std::vector<Record> recs = drain();
  ASSERT_EQ(recs.size(), 1u);  // 3000 bytes fit the 16 KiB class
  EXPECT_EQ(recs[0].hdr.payload_len, body.size());
  EXPECT_EQ(recs[0].payload, body);
  EXPECT_EQ(recs[0].hdr.direction, ST_DIR_FROM_SERVER);
}

}  // namespace
}  // namespace shadowtap::bpftest
