// The test-only counting program must itself honour the chain contract
// (TC_ACT_UNSPEC, packet untouched) and count every packet it sees.

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "libbpf_log_capture.h"
#include "packet_builder.h"
#include "testing_noop_tc.skel.h"

namespace shadowtap::bpftest {
namespace {

TEST(TestingNoopTc, CountsAndPassesThrough) {
  const char* ci = std::getenv("CI");
  const bool strict = ci != nullptr && std::string(ci) == "true";
  if (geteuid() != 0) {
    if (strict) {
      FAIL() << "BPF tests need root (CI=true)";
    }
    GTEST_SKIP() << "BPF tests need root";
  }
  // As root a refused load is the kernel's answer (the verifier), not a missing privilege.
  LibbpfLogCapture log;
  testing_noop_tc* skel = testing_noop_tc__open_and_load();
  ASSERT_NE(skel, nullptr) << "loading the test-only TC program failed: " << std::strerror(errno) << "\n"
                           << LibbpfLogCapture::loadFailure();

  const Bytes frame = ethernet(kEthArp, arpRequest(), {}, 60);
  Bytes out(frame.size() + 64);
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_out = out.data(),
              .data_size_in = static_cast<uint32_t>(frame.size()),
              .data_size_out = static_cast<uint32_t>(out.size()), .repeat = 3);
  ASSERT_EQ(bpf_prog_test_run_opts(bpf_program__fd(skel->progs.st_testing_noop), &opts), 0);
  EXPECT_EQ(static_cast<int>(opts.retval), -1);
  out.resize(opts.data_size_out);
  EXPECT_EQ(out, frame);

  const uint32_t key = 0;
  uint64_t hits = 0;
  ASSERT_EQ(bpf_map__lookup_elem(skel->maps.st_noop_hits, &key, sizeof(key), &hits, sizeof(hits), 0), 0);
  EXPECT_EQ(hits, 3u);
  testing_noop_tc__destroy(skel);
}

}  // namespace
}  // namespace shadowtap::bpftest
