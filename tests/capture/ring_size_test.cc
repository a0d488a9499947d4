// How the ring buffer memory is shared out over the workers, and the refusal of
// a share too small for the largest record (no root: the refusal comes before
// anything is loaded). Reading several rings in turn: records add up, an error
// stays an error.

#include <gtest/gtest.h>

#include <cerrno>
#include <string>

#include "capture/capture_options.h"
#include "capture/loader.h"
#include "capture/ring_reader.h"

namespace shadowtap::capture {
namespace {

TEST(RingSizeTest, EachWorkerGetsThePowerOfTwoOfItsShare) {
  EXPECT_EQ(ringBytesPerWorker(16u << 20, 4), 4u << 20);
  EXPECT_EQ(ringBytesPerWorker(16u << 20, 3), 4u << 20);  // 5.3 MiB rounded down
  EXPECT_EQ(ringBytesPerWorker(1u << 20, 8), kMinRingBytesPerWorker);
  EXPECT_EQ(ringBytesPerWorker(1u << 20, 16), 64u << 10);
}

TEST(RingSizeTest, AShareThatCannotHoldTheLargestRecordIsRefusedSayingWhatToRaiseOrLower) {
  EXPECT_EQ(checkRingShare(1u << 20, 8), "");
  EXPECT_EQ(checkRingShare(16u << 20, 64), "");
  EXPECT_EQ(checkRingShare(8u << 20, 64), "");
  const std::string why = checkRingShare(1u << 20, 16);
  EXPECT_NE(why.find("64 KiB"), std::string::npos) << why;
  EXPECT_NE(why.find("at least 128 KiB"), std::string::npos) << why;
  EXPECT_NE(why.find("raise --ring-buffer-mib to 2"), std::string::npos) << why;
  EXPECT_NE(why.find("lower --workers to 8"), std::string::npos) << why;
  const std::string many = checkRingShare(1u << 20, 64);
  EXPECT_NE(many.find("16 KiB"), std::string::npos) << many;
  EXPECT_NE(many.find("raise --ring-buffer-mib to 8"), std::string::npos) << many;
}

TEST(RingSizeTest, TheLoaderRefusesATooSmallShareBeforeLoading) {
  CaptureOptions options;
  options.ringBufferBytes = 1u << 20;
  options.workers = 16;
  std::string error;
  EXPECT_EQ(LoadedProgram::load(options, &error), nullptr);
  EXPECT_NE(error.find("at least 128 KiB"), std::string::npos) << error;
}

TEST(ConsumedTest, AnErrorIsNotAddedToALaterRingsRecords) {
  EXPECT_EQ(addConsumed(addConsumed(0, 3), 4), 7);
  EXPECT_EQ(addConsumed(addConsumed(0, -EIO), 5), -EIO);
  EXPECT_EQ(addConsumed(addConsumed(0, 5), -EIO), -EIO);
  EXPECT_EQ(addConsumed(addConsumed(0, -EIO), -EBADF), -EIO) << "the first error stays";
}

}  // namespace
}  // namespace shadowtap::capture
