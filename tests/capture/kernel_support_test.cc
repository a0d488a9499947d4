// What a user sees when the kernel refuses a program: the verifier's verdict and
// its last lines, never "run as root" (as root). Loads for real (root).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "capture/kernel_support.h"
#include "capture/libbpf_log.h"
#include "testing_rejected.skel.h"

namespace shadowtap::capture {
namespace {

bool strict() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string(ci) == "true";
}

class KernelSupportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) {
      if (strict()) {
        FAIL() << "needs root (CI=true, so this is a failure, not a skip)";
      }
      GTEST_SKIP() << "needs root to load BPF programs";
    }
    routeLibbpfLogsToSpdlog();
  }
};

TEST_F(KernelSupportTest, ThisKernelHasWhatTcCaptureNeeds) { EXPECT_EQ(missingKernelSupport(false), ""); }

TEST_F(KernelSupportTest, VerifierRejectionIsReportedAsOneWithItsLastLines) {
  clearVerifierLog();
  testing_rejected* skel = testing_rejected__open();
  ASSERT_NE(skel, nullptr);
  const int err = testing_rejected__load(skel);
  testing_rejected__destroy(skel);
  ASSERT_NE(err, 0) << "the kernel accepted a program that reads an unbounded length into 8 bytes";

  const std::string message = describeLoadFailure("the test program", err);
  EXPECT_NE(message.find("the kernel's BPF verifier rejected the test program"), std::string::npos) << message;
  EXPECT_EQ(message.find("run as root"), std::string::npos) << message;
  EXPECT_EQ(message.find("missing privileges"), std::string::npos) << message;
  // The verdict line of every kernel since 5.x names the helper argument or the access.
  EXPECT_TRUE(message.find("R4") != std::string::npos || message.find("invalid") != std::string::npos ||
              message.find("unbounded") != std::string::npos)
      << message;
  EXPECT_GT(lastVerifierLog(100).size(), 3u);
}

TEST_F(KernelSupportTest, VerifierLogIsKeptToItsLastLine) {
  // A verifier log is one libbpf message of many lines; the old 1024-byte
  // formatting buffer cut it after ~15 lines. The kept tail must end at the
  // verdict, the last line the kernel printed.
  clearVerifierLog();
  testing_rejected* skel = testing_rejected__open();
  ASSERT_NE(skel, nullptr);
  ASSERT_NE(testing_rejected__load(skel), 0);
  testing_rejected__destroy(skel);
  const auto tail = lastVerifierLog(64);
  ASSERT_FALSE(tail.empty());
  size_t total = 0;
  for (const auto& line : tail) {
    total += line.size() + 1;
  }
  EXPECT_GT(total, 200u);
  // Kernels end a rejection with the processed-instructions summary.
  EXPECT_NE(tail.back().find("processed"), std::string::npos) << tail.back();
}

}  // namespace
}  // namespace shadowtap::capture
