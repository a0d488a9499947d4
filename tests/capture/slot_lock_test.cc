#include "capture/slot_lock.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>

namespace shadowtap::capture {
namespace {

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/st-slotlock-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  size_t files() const {
    size_t n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(path)) {
      ++n;
    }
    return n;
  }
};

TEST(SlotLock, ASlotHeldByOneOwnerIsHeldForEveryOtherUntilReleased) {
  TempDir dir;
  const std::string state = dir.path + "/state";  // created on first use
  SlotLock first;
  std::string why;
  ASSERT_EQ(SlotLock::tryAcquire(state, SlotLock::tcSlot(7, false, 0x5354, 1), &first, &why),
            SlotLock::Result::kAcquired) << why;
  EXPECT_TRUE(first.held());
  struct stat st {};
  ASSERT_EQ(stat(state.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);

  // flock(2) conflicts between open file descriptions, so another owner in this
  // process stands for another process here.
  SlotLock second;
  EXPECT_EQ(SlotLock::tryAcquire(state, SlotLock::tcSlot(7, false, 0x5354, 1), &second, &why), SlotLock::Result::kHeld);
  EXPECT_FALSE(second.held());
  // Any other slot (handle, priority, hook, interface) is free.
  SlotLock other;
  EXPECT_EQ(SlotLock::tryAcquire(state, SlotLock::tcSlot(7, false, 0x5355, 1), &other, &why),
            SlotLock::Result::kAcquired);
  SlotLock egress;
  EXPECT_EQ(SlotLock::tryAcquire(state, SlotLock::tcSlot(7, true, 0x5354, 1), &egress, &why),
            SlotLock::Result::kAcquired);
  SlotLock prio;
  EXPECT_EQ(SlotLock::tryAcquire(state, SlotLock::tcSlot(7, false, 0x5354, 2), &prio, &why),
            SlotLock::Result::kAcquired);
  SlotLock iface;
  EXPECT_EQ(SlotLock::tryAcquire(state, SlotLock::tcSlot(8, false, 0x5354, 1), &iface, &why),
            SlotLock::Result::kAcquired);

  // Released (or moved away and destroyed): the file goes and the slot is free.
  SlotLock moved(std::move(first));
  EXPECT_FALSE(first.held());
  moved.release();
  EXPECT_EQ(SlotLock::tryAcquire(state, SlotLock::tcSlot(7, false, 0x5354, 1), &second, &why),
            SlotLock::Result::kAcquired);
  second.release();
  other.release();
  egress.release();
  prio.release();
  iface.release();
  size_t left = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(state)) {
    ++left;
  }
  EXPECT_EQ(left, 0u);
}

TEST(SlotLock, ALeftoverLockFileIsFree) {
  // A killed owner leaves its file; the kernel has dropped its lock.
  TempDir dir;
  SlotLock a;
  std::string why;
  ASSERT_EQ(SlotLock::tryAcquire(dir.path, SlotLock::tcSlot(3, false, 1, 1), &a, &why), SlotLock::Result::kAcquired);
  const auto file = std::filesystem::directory_iterator(dir.path)->path();
  // The state a SIGKILL leaves: the file still there, nobody holding its lock.
  std::filesystem::copy_file(file, file.string() + ".keep");
  a.release();
  std::filesystem::rename(file.string() + ".keep", file);
  ASSERT_EQ(dir.files(), 1u);
  SlotLock b;
  EXPECT_EQ(SlotLock::tryAcquire(dir.path, SlotLock::tcSlot(3, false, 1, 1), &b, &why), SlotLock::Result::kAcquired);
  b.release();
  EXPECT_EQ(dir.files(), 0u);
}

TEST(SlotLock, NoUsableDirectoryIsSaidNotGuessed) {
  SlotLock l;
  std::string why;
  EXPECT_EQ(SlotLock::tryAcquire("", SlotLock::xdpSlot(1), &l, &why), SlotLock::Result::kUnavailable);
  EXPECT_FALSE(why.empty());
  why.clear();
  EXPECT_EQ(SlotLock::tryAcquire("/proc/shadowtap-state", SlotLock::xdpSlot(1), &l, &why),
            SlotLock::Result::kUnavailable);
  EXPECT_NE(why.find("/proc/shadowtap-state"), std::string::npos) << why;
  EXPECT_FALSE(l.held());
}

}  // namespace
}  // namespace shadowtap::capture
