// Workers in the kernel (ABI 4): with st_workers = N the program sends every
// record of a connection, both directions, to the ring buffer of worker
// referenceWorker(flow hash, N) in st_rings; the choice spreads connections
// evenly and does not skew the sample; a worker without a ring loses its
// records, counted, and the packet still passes unchanged. TC and XDP alike.

#include <map>
#include <set>

#include "capture_fixture.h"
#include "reference_hash.h"

namespace shadowtap::bpftest {
namespace {

constexpr uint32_t kWorkers = 4;
constexpr uint16_t kWeb = 8080;
constexpr uint32_t kRuleId = 3;
const Ip4Addr kServer{198, 19, 0, 80};
const Bytes kRequest = {'G', 'E', 'T', ' ', '/', ' ', 'H', 'T', 'T', 'P', '/', '1', '.', '1', '\r', '\n'};
const Bytes kResponse = {'H', 'T', 'T', 'P', '/', '1', '.', '1', ' ', '2', '0', '0', '\r', '\n'};

// A record and the worker whose ring it was read from.
struct Seen {
  uint32_t worker = 0;
  st_segment hdr{};
};

class CaptureWorkersTest : public CaptureFixture, public ::testing::WithParamInterface<bool> {
 protected:
  bool useXdp() const override { return GetParam(); }
  uint32_t workers() const override { return kWorkers; }

  void SetUp() override {
    CaptureFixture::SetUp();
    if (IsSkipped() || HasFatalFailure()) {
      return;
    }
    contexts_[0] = {this, 0};
    reader_ = ring_buffer__new(bpf_map__fd(eventsMap()), &onRecord, &contexts_[0], nullptr);
    ASSERT_NE(reader_, nullptr);
  }

  void TearDown() override {
    if (reader_ != nullptr) {
      ring_buffer__free(reader_);
    }
    CaptureFixture::TearDown();
  }

  bpf_map* eventsMap() const { return useXdp() ? xskel_->maps.st_events : skel_->maps.st_events; }

  // Gives `worker` a ring buffer of its own in st_rings and reads it too.
  void addRing(uint32_t worker) {
    const int fd = bpf_map_create(BPF_MAP_TYPE_RINGBUF, "st_test_ring", 0, 0, 1u << 20, nullptr);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    ringFds_.push_back(fd);
    ASSERT_EQ(bpf_map__update_elem(rings_, &worker, sizeof(worker), &fd, sizeof(fd), BPF_ANY), 0)
        << std::strerror(errno);
    contexts_[worker] = {this, worker};
    ASSERT_EQ(ring_buffer__add(reader_, fd, &onRecord, &contexts_[worker]), 0);
  }

  std::vector<Seen> drainAll() {
    seen_.clear();
    EXPECT_GE(ring_buffer__consume(reader_), 0);
    return std::move(seen_);
  }

  // One request from client port `port` to the server and its response back:
  // the response through the TC egress program (compare mode), or, in XDP mode
  // (no egress hook), as an ingress packet of a rule on the client's port.
  void exchange(uint16_t port) {
    const Ip4Addr client{198, 18, static_cast<uint8_t>(port >> 8), static_cast<uint8_t>(port)};
    runUnchanged(ethernet(kEthIpv4, ipv4(kProtoTcp, client, kServer,
                                         tcp(port, kWeb, 100, 5000, ST_TCP_ACK | ST_TCP_PSH, kRequest))));
    const Bytes back = ethernet(kEthIpv4, ipv4(kProtoTcp, kServer, client,
                                               tcp(kWeb, port, 5000, 116, ST_TCP_ACK | ST_TCP_PSH, kResponse)));
    if (useXdp()) {
      runUnchanged(back);
      return;
    }
    const int ingress = progFd_;
    progFd_ = bpf_program__fd(skel_->progs.st_capture_egr);
    runUnchanged(back);
    progFd_ = ingress;
  }

  uint32_t predictedWorker(uint16_t port) const {
    const Ip4Addr client{198, 18, static_cast<uint8_t>(port >> 8), static_cast<uint8_t>(port)};
    return referenceWorker(referenceFlowHash(mapped(client), port, mapped(kServer), kWeb, kTestSeed), kWorkers);
  }

  // Rules for both directions: the service port (compare flag for TC egress)
  // and, for XDP's stand-in response path, every client port used.
  void installRules(uint32_t sampleBp, uint16_t firstPort, uint16_t ports) {
    setRule(kWeb, kRuleId, sampleBp);
    const uint32_t key = kWeb;
    st_rule rule{};
    ASSERT_EQ(bpf_map__lookup_elem(rules_, &key, sizeof(key), &rule, sizeof(rule), 0), 0);
    rule.flags |= ST_RULE_F_COMPARE;
    ASSERT_EQ(bpf_map__update_elem(rules_, &key, sizeof(key), &rule, sizeof(rule), BPF_ANY), 0);
    if (useXdp()) {
      for (uint16_t p = firstPort; p < firstPort + ports; ++p) {
        setRule(p, kRuleId, sampleBp);
      }
    }
  }

  static Ip6Addr mapped(const Ip4Addr& a) {
    Ip6Addr out{};
    std::copy(a.begin(), a.end(), out.begin());
    return out;
  }

 private:
  struct Context {
    CaptureWorkersTest* self = nullptr;
    uint32_t worker = 0;
  };
  static int onRecord(void* ctx, void* data, size_t size) {
    auto* c = static_cast<Context*>(ctx);
    if (size < sizeof(st_segment)) {
      ADD_FAILURE() << "record shorter than st_segment";
      return 0;
    }
    Seen s;
    s.worker = c->worker;
    std::memcpy(&s.hdr, data, sizeof(st_segment));
    c->self->seen_.push_back(s);
    return 0;
  }

  ring_buffer* reader_ = nullptr;
  std::array<Context, kWorkers> contexts_{};
  std::vector<int> ringFds_;
  std::vector<Seen> seen_;

 public:
  ~CaptureWorkersTest() override {
    for (int fd : ringFds_) {
      close(fd);
    }
  }
};

TEST_P(CaptureWorkersTest, BothDirectionsOfAConnectionMeetInTheWorkerOfItsHash) {
  for (uint32_t w = 1; w < kWorkers; ++w) {
    addRing(w);
  }
  constexpr uint16_t kFirst = 30000, kFlows = 400;
  installRules(ST_SAMPLE_SCALE, kFirst, kFlows);
  std::map<uint32_t, int> perWorker;
  for (uint16_t port = kFirst; port < kFirst + kFlows; ++port) {
    exchange(port);
    const std::vector<Seen> seen = drainAll();
    ASSERT_EQ(seen.size(), 2u) << "request and response of port " << port;
    EXPECT_EQ(seen[0].worker, seen[1].worker) << "the two directions of port " << port << " split";
    EXPECT_EQ(seen[0].worker, predictedWorker(port)) << "port " << port;
    ++perWorker[seen[0].worker];
  }
  ASSERT_EQ(perWorker.size(), kWorkers);
  for (const auto& [worker, flows] : perWorker) {
    // 100 expected per worker; a binomial(400, 1/4) stays within 65..135 with overwhelming odds.
    EXPECT_GT(flows, 65) << "worker " << worker;
    EXPECT_LT(flows, 135) << "worker " << worker;
  }
  const Counters c = counters();
  EXPECT_EQ(c[ST_CNT_NO_RING], 0u);
  EXPECT_EQ(c[ST_CNT_RINGBUF_FULL], 0u);
}

TEST_P(CaptureWorkersTest, EveryWorkerGetsItsShareOfASample) {
  for (uint32_t w = 1; w < kWorkers; ++w) {
    addRing(w);
  }
  constexpr uint16_t kFirst = 31000, kFlows = 800;
  installRules(ST_SAMPLE_SCALE / 2, kFirst, kFlows);
  std::map<uint32_t, int> perWorker;
  int sampled = 0;
  for (uint16_t port = kFirst; port < kFirst + kFlows; ++port) {
    exchange(port);
    const std::vector<Seen> seen = drainAll();
    const Ip4Addr client{198, 18, static_cast<uint8_t>(port >> 8), static_cast<uint8_t>(port)};
    const uint32_t hash = referenceFlowHash(mapped(client), port, mapped(kServer), kWeb, kTestSeed);
    const bool predicted = hash % ST_SAMPLE_SCALE < ST_SAMPLE_SCALE / 2;
    ASSERT_EQ(seen.size(), predicted ? 2u : 0u) << "port " << port;
    if (predicted) {
      ++sampled;
      EXPECT_EQ(seen[0].worker, seen[1].worker);
      ++perWorker[seen[0].worker];
    }
  }
  ASSERT_GT(sampled, 300);
  ASSERT_EQ(perWorker.size(), kWorkers);
  for (const auto& [worker, flows] : perWorker) {
    EXPECT_GT(flows, sampled / 4 - 40) << "worker " << worker << " of " << sampled << " sampled";
    EXPECT_LT(flows, sampled / 4 + 40) << "worker " << worker << " of " << sampled << " sampled";
  }
}

TEST_P(CaptureWorkersTest, AWorkerWithoutARingLosesItsRecordsCountedAndThePacketPasses) {
  addRing(1);  // workers 2 and 3 have none
  constexpr uint16_t kFirst = 32000, kFlows = 200;
  installRules(ST_SAMPLE_SCALE, kFirst, kFlows);
  uint64_t orphaned = 0;
  for (uint16_t port = kFirst; port < kFirst + kFlows; ++port) {
    exchange(port);  // runUnchanged: verdict and bytes as always
    const std::vector<Seen> seen = drainAll();
    const uint32_t w = predictedWorker(port);
    if (w >= 2) {
      EXPECT_TRUE(seen.empty());
      orphaned += 2;
    } else {
      EXPECT_EQ(seen.size(), 2u);
    }
  }
  ASSERT_GT(orphaned, 0u);
  EXPECT_EQ(counters()[ST_CNT_NO_RING], orphaned);
}

INSTANTIATE_TEST_SUITE_P(Programs, CaptureWorkersTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? std::string("xdp") : std::string("tc"); });

}  // namespace
}  // namespace shadowtap::bpftest
