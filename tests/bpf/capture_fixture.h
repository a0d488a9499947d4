#pragma once

// Loads the capture program's skeleton (no attach) and runs frames through it
// with bpf_prog_test_run_opts, collecting ring buffer records and counters. The
// TC program by default; fixtures overriding useXdp() load the XDP twin, which
// shares the parsing and emitting code and must give the same answers.

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <array>
#include <span>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "capture_tc.skel.h"
#include "capture_xdp.skel.h"
#include "libbpf_log_capture.h"
#include "packet_builder.h"
#include "shadowtap/capture_abi.h"

namespace shadowtap::bpftest {

inline constexpr uint32_t kTestSeed = 0x5eed1234;

// Kernel BPF needs root. Locally a missing privilege (not root) skips; under CI it
// must fail, so that a misconfigured runner cannot turn the whole suite green. A
// load refused as root is never a skip: EACCES/EPERM then come from the verifier
// or the kernel, and the test fails with the verifier's last lines.
inline bool requireStrict() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string(ci) == "true";
}

struct Record {
  st_segment hdr{};
  size_t reservedSize = 0;  // sizeof(st_segment) + the class chosen by the program
  Bytes payload;            // the cap_len bytes after the header
};

struct RunResult {
  int err = 0;
  int retval = 0;
  Bytes dataOut;
};

using Counters = std::array<uint64_t, ST_CNT_MAX>;

class CaptureFixture : public ::testing::Test {
 protected:
  // Ring size used by SetUp; tests that want a full ring override it.
  virtual uint32_t ringBytes() const { return 0; }
  virtual bool useXdp() const { return false; }
  // The program's st_workers setting; with more than one, slots 1.. of
  // st_rings stay empty until the test fills them.
  virtual uint32_t workers() const { return 1; }
  // What the program must return for every packet: TC_ACT_UNSPEC or XDP_PASS.
  int expectedVerdict() const { return useXdp() ? 2 : -1; }

  void SetUp() override {
    if (geteuid() != 0) {
      if (requireStrict()) {
        FAIL() << "BPF tests need root (CI=true, so this is a failure, not a skip)";
      }
      GTEST_SKIP() << "BPF tests need root: run as root (or with CAP_BPF+CAP_NET_ADMIN)";
    }
    if (useXdp()) {
      loadXdp();
    } else {
      loadTc();
    }
  }

  void loadTc() {
    skel_ = capture_tc__open();
    ASSERT_NE(skel_, nullptr) << "capture_tc__open: " << std::strerror(errno);
    skel_->rodata->st_hash_seed = kTestSeed;
    skel_->rodata->st_workers = workers();
    if (ringBytes() != 0) {
      ASSERT_EQ(bpf_map__set_max_entries(skel_->maps.st_events, ringBytes()), 0);
    }
    LibbpfLogCapture log;
    const int err = capture_tc__load(skel_);
    ASSERT_EQ(err, 0) << "loading the TC capture program failed: " << std::strerror(-err) << "\n"
                      << LibbpfLogCapture::loadFailure();
    progFd_ = bpf_program__fd(skel_->progs.st_capture_tc);
    rules_ = skel_->maps.st_rules;
    prefixRules_ = skel_->maps.st_prefix_rules;
    counters_ = skel_->maps.st_counters;
    rings_ = skel_->maps.st_rings;
    ring_ = ring_buffer__new(bpf_map__fd(skel_->maps.st_events), &CaptureFixture::onRecord, this, nullptr);
    ASSERT_NE(ring_, nullptr);
  }

  void loadXdp() {
    xskel_ = capture_xdp__open();
    ASSERT_NE(xskel_, nullptr) << "capture_xdp__open: " << std::strerror(errno);
    xskel_->rodata->st_hash_seed = kTestSeed;
    xskel_->rodata->st_workers = workers();
    if (ringBytes() != 0) {
      ASSERT_EQ(bpf_map__set_max_entries(xskel_->maps.st_events, ringBytes()), 0);
    }
    LibbpfLogCapture log;
    const int err = capture_xdp__load(xskel_);
    ASSERT_EQ(err, 0) << "loading the XDP capture program failed: " << std::strerror(-err) << "\n"
                      << LibbpfLogCapture::loadFailure();
    progFd_ = bpf_program__fd(xskel_->progs.st_capture_xdp);
    rules_ = xskel_->maps.st_rules;
    prefixRules_ = xskel_->maps.st_prefix_rules;
    counters_ = xskel_->maps.st_counters;
    rings_ = xskel_->maps.st_rings;
    ring_ = ring_buffer__new(bpf_map__fd(xskel_->maps.st_events), &CaptureFixture::onRecord, this, nullptr);
    ASSERT_NE(ring_, nullptr);
  }

  void TearDown() override {
    if (ring_ != nullptr) {
      ring_buffer__free(ring_);
    }
    if (skel_ != nullptr) {
      capture_tc__destroy(skel_);
    }
    if (xskel_ != nullptr) {
      capture_xdp__destroy(xskel_);
    }
  }


 public:
  // Helpers are public so that free helper functions of a test can drive them.
  void setRule(uint16_t port, uint32_t ruleId, uint32_t sampleBp) {
    const uint32_t key = port;
    st_rule rule{};
    bpf_map__lookup_elem(rules_, &key, sizeof(key), &rule, sizeof(rule), 0);
    rule.rule_id = ruleId;
    rule.sample_bp = sampleBp;
    ASSERT_EQ(bpf_map__update_elem(rules_, &key, sizeof(key), &rule, sizeof(rule), BPF_ANY), 0);
  }

  // A rule narrowed to addr/len (addr as 4 or 16 bytes), as the agent writes it:
  // trie entry plus the port's "has prefix rules" flag.
  void setPrefixRule(uint16_t port, uint8_t family, std::span<const uint8_t> addr, uint32_t len, uint32_t ruleId,
                     uint32_t sampleBp) {
    st_prefix_key key{};
    key.prefixlen = ST_PREFIX_KEY_FIXED_BITS + len;
    key.port = htons(port);
    key.family = family;
    std::memcpy(key.addr, addr.data(), addr.size());
    const st_rule value{ruleId, sampleBp, 0};
    ASSERT_EQ(bpf_map__update_elem(prefixRules_, &key, sizeof(key), &value, sizeof(value), BPF_ANY), 0);
    const uint32_t pk = port;
    st_rule entry{};
    bpf_map__lookup_elem(rules_, &pk, sizeof(pk), &entry, sizeof(entry), 0);
    entry.flags |= ST_RULE_F_HAS_PREFIX;
    ASSERT_EQ(bpf_map__update_elem(rules_, &pk, sizeof(pk), &entry, sizeof(entry), BPF_ANY), 0);
  }

  RunResult run(const Bytes& frame) {
    RunResult r;
    r.dataOut.assign(frame.size() + 512, 0xEE);
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_out = r.dataOut.data(),
                .data_size_in = static_cast<uint32_t>(frame.size()),
                .data_size_out = static_cast<uint32_t>(r.dataOut.size()), .repeat = 1);
    r.err = bpf_prog_test_run_opts(progFd_, &opts);
    r.retval = static_cast<int>(opts.retval);
    r.dataOut.resize(opts.data_size_out);
    return r;
  }

  // Runs a frame and asserts the two promises every packet gets: the verdict
  // lets the chain continue and the bytes are untouched.
  void runUnchanged(const Bytes& frame) {
    const RunResult r = run(frame);
    ASSERT_EQ(r.err, 0) << std::strerror(-r.err);
    EXPECT_EQ(r.retval, expectedVerdict()) << "verdict must be TC_ACT_UNSPEC / XDP_PASS";
    EXPECT_EQ(r.dataOut, frame) << "packet was modified";
  }

  std::vector<Record> drain() {
    records_.clear();
    const int n = ring_buffer__consume(ring_);
    EXPECT_GE(n, 0);
    return std::move(records_);
  }

  Counters counters() {
    Counters sum{};
    const int cpus = libbpf_num_possible_cpus();
    std::vector<uint64_t> perCpu(static_cast<size_t>(cpus));
    for (uint32_t i = 0; i < ST_CNT_MAX; ++i) {
      const int err = bpf_map__lookup_elem(counters_, &i, sizeof(i), perCpu.data(),
                                           perCpu.size() * sizeof(uint64_t), 0);
      EXPECT_EQ(err, 0);
      for (uint64_t v : perCpu) {
        sum[i] += v;
      }
    }
    return sum;
  }


 protected:
  capture_tc* skel_ = nullptr;
  capture_xdp* xskel_ = nullptr;
  int progFd_ = -1;
  bpf_map* rules_ = nullptr;
  bpf_map* prefixRules_ = nullptr;
  bpf_map* counters_ = nullptr;
  bpf_map* rings_ = nullptr;  // st_rings; slot 0 is st_events, which ring_ reads
  ring_buffer* ring_ = nullptr;

 private:
  static int onRecord(void* ctx, void* data, size_t size) {
    auto* self = static_cast<CaptureFixture*>(ctx);
    Record rec;
    rec.reservedSize = size;
    if (size < sizeof(st_segment)) {
      ADD_FAILURE() << "record shorter than st_segment: " << size;
      return 0;
    }
    std::memcpy(&rec.hdr, data, sizeof(st_segment));
    if (sizeof(st_segment) + rec.hdr.cap_len > size) {
      ADD_FAILURE() << "cap_len " << rec.hdr.cap_len << " exceeds record size " << size;
      return 0;
    }
    const auto* p = static_cast<const uint8_t*>(data) + sizeof(st_segment);
    rec.payload.assign(p, p + rec.hdr.cap_len);
    self->records_.push_back(std::move(rec));
    return 0;
  }

  std::vector<Record> records_;
};

}  // namespace shadowtap::bpftest
