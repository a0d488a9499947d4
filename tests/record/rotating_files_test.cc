#include "record/rotating_files.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "record_test_util.h"

namespace shadowtap::record {
namespace {

using testing::makeRequest;
using testing::optionsFor;
using testing::TempDir;

void writeFile(const std::string& path, size_t bytes) {
  std::ofstream(path, std::ios::binary) << std::string(bytes, 'x');
}

bool exists(const TempDir& dir, const std::string& name) {
  return std::filesystem::exists(dir.path() + "/" + name);
}

std::string nameOf(const std::string& path) { return std::filesystem::path(path).filename().string(); }

TEST(RotatingFiles, FilesOfAnotherRecordingAreNotOurs) {
  TempDir dir;
  // --record rec-2.jsonl and --record rec-000002.jsonl in the same directory.
  writeFile(dir.path() + "/rec-2-000001-20240501T120000Z.jsonl", 1000);
  writeFile(dir.path() + "/rec-000002-000001-20240501T120000Z.jsonl", 1000);
  // Not the shape we write: no time stamp, a short one, sequence not zero-padded to 6 or padded beyond.
  writeFile(dir.path() + "/rec-000007.jsonl", 1000);
  writeFile(dir.path() + "/rec-000008-20240501T1200Z.jsonl", 1000);
  writeFile(dir.path() + "/rec-9-20240501T120000Z.jsonl", 1000);
  writeFile(dir.path() + "/rec-0000010-20240501T120000Z.jsonl", 1000);
  writeFile(dir.path() + "/rec-000003-20240501T120000Z.jsonl", 500);  // ours, from an earlier run
  RecordStats stats;
  RotatingFiles files(dir.path() + "/rec.jsonl", 600, stats);
  EXPECT_EQ(files.closedBytes(), 500u);
  EXPECT_EQ(stats.diskBytes, 500);
  EXPECT_EQ(nameOf(files.nextPath(testing::kMay1)), "rec-000004-20240501T120000Z.jsonl");
  files.enforceCap(200);  // over the cap: only our own file goes
  EXPECT_EQ(stats.filesDeleted, 1u);
  EXPECT_FALSE(exists(dir, "rec-000003-20240501T120000Z.jsonl"));
  for (const char* foreign : {"rec-2-000001-20240501T120000Z.jsonl", "rec-000002-000001-20240501T120000Z.jsonl",
                              "rec-000007.jsonl", "rec-000008-20240501T1200Z.jsonl", "rec-9-20240501T120000Z.jsonl",
                              "rec-0000010-20240501T120000Z.jsonl"}) {
    EXPECT_TRUE(exists(dir, foreign)) << foreign;
  }
}

TEST(RotatingFiles, OverLongSequenceIsIgnoredNotThrown) {
  TempDir dir;
  writeFile(dir.path() + "/rec-123456789012345678901234567890-20240501T120000Z.jsonl", 100);
  writeFile(dir.path() + "/rec-18446744073709551615-20240501T120000Z.jsonl", 100);  // the last number
  writeFile(dir.path() + "/rec-1234567-20240501T120000Z.jsonl", 100);  // past 6 digits: ours
  RecordStats stats;
  std::optional<RotatingFiles> files;
  EXPECT_NO_THROW(files.emplace(dir.path() + "/rec.jsonl", 1 << 20, stats));
  ASSERT_TRUE(files.has_value());
  EXPECT_EQ(files->closedBytes(), 100u);
  EXPECT_EQ(nameOf(files->nextPath(testing::kMay1)), "rec-1234568-20240501T120000Z.jsonl");
  const std::string path = files->nextPath(testing::kMay1);
  writeFile(path, 10);
  files->closed(path, 10);
  EXPECT_EQ(files->closedBytes(), 110u);
}

TEST(RotatingFiles, RecorderKeepsAnotherRecordingUnderItsCap) {
  TempDir dir;
  const std::string foreign = "rec-2-000001-20240501T120000Z.jsonl";
  writeFile(dir.path() + "/" + foreign, 2000);
  RecordOptions o = optionsFor(dir, "rec.jsonl");
  o.maxFileBytes = 1000;
  o.maxTotalBytes = 3000;
  auto w = testing::make(o);
  for (int i = 0; i < 40; ++i) {
    w->onRequest(makeRequest("GET /r HTTP/1.1\r\nHost: h\r\n\r\n"));
  }
  w->close();
  EXPECT_EQ(w->stats().written, 40u);
  EXPECT_GT(w->stats().filesDeleted, 0u);
  EXPECT_TRUE(exists(dir, foreign));
  EXPECT_LE(w->stats().diskBytes, 3000);
}

}  // namespace
}  // namespace shadowtap::record
