#pragma once

#include <cstdint>
#include <deque>
#include <string>

#include "record/record_stats.h"

namespace shadowtap::record {

// Names, lists and deletes the files of one recording: for path
// "dir/traffic.har" the files are "dir/traffic-000001-20240501T120000Z.har",
// "...-000002-...", the sequence number continuing after the highest one
// already in the directory, so sorting by it orders files by age, also
// across restarts. Enforces the cap on their total size by deleting the
// oldest closed files. Writer thread only.
class RotatingFiles {
 public:
  RotatingFiles(const std::string& path, uint64_t maxTotalBytes, RecordStats& stats);

  // Path of the next file to open (named after `unixNs`).
  std::string nextPath(int64_t unixNs);
  // The file just closed, with its final size.
  void closed(const std::string& path, uint64_t bytes);
  // Deletes the oldest closed files while closed + `openBytes` > the cap.
  void enforceCap(uint64_t openBytes);

  uint64_t closedBytes() const { return closedBytes_; }
  // "dir/traffic-" and ".har", for tests and globbing.
  const std::string& prefix() const { return prefix_; }
  const std::string& extension() const { return ext_; }

 private:
  struct File {
    uint64_t seq;
    std::string path;
    uint64_t bytes;
  };
  std::string prefix_;
  std::string ext_;
  uint64_t maxTotalBytes_;
  RecordStats& stats_;
  uint64_t nextSeq_ = 1;
  std::deque<File> files_;  // closed, oldest first
  uint64_t closedBytes_ = 0;
};

}  // namespace shadowtap::record
