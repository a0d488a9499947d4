#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>

#include "record/record_stats.h"

namespace shadowtap::record {

// Names, lists and deletes the files of one recording: for path
// "dir/traffic.har" the files are "dir/traffic-000001-20240501T120000Z.har",
// "...-000002-...", the sequence number continuing after the highest one
// already in the directory, so sorting by it orders files by age, also
// across restarts. Enforces the cap on their total size by deleting the
// oldest closed files. Only names of exactly that shape are ours: the scan
// at construction ignores other files, also those of another recording
// whose stem starts with ours ("dir/traffic-2.har"). Writer thread only.
class RotatingFiles {
 public:
  RotatingFiles(const std::string& path, uint64_t maxTotalBytes, RecordStats& stats);

  // Path of the next file to open (named after `unixNs`).
  std::string nextPath(int64_t unixNs);
  // The file just closed (the last path nextPath gave), with its final size.
  void closed(const std::string& path, uint64_t bytes);
  // Deletes the oldest closed files while closed + `openBytes` > the cap.
  void enforceCap(uint64_t openBytes);

  uint64_t closedBytes() const { return closedBytes_; }
  // "dir/traffic-" and ".har", for tests and globbing.
  const std::string& prefix() const { return prefix_; }
  const std::string& extension() const { return ext_; }

 private:
  // The sequence number of a file name (without directory) of ours; nullopt
  // for any other name.
  std::optional<uint64_t> sequenceOf(std::string_view name) const;

  struct File {
    uint64_t seq;
    std::string path;
    uint64_t bytes;
  };
  std::string prefix_;
  std::string ext_;
  std::string stemDash_;  // "traffic-"
  uint64_t maxTotalBytes_;
  RecordStats& stats_;
  uint64_t nextSeq_ = 1;
  uint64_t lastSeq_ = 0;  // handed out by nextPath
  std::deque<File> files_;  // closed, oldest first
  uint64_t closedBytes_ = 0;
};

}  // namespace shadowtap::record
