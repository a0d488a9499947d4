#include "record/rotating_files.h"

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <vector>

namespace shadowtap::record {

namespace fs = std::filesystem;

RotatingFiles::RotatingFiles(const std::string& path, uint64_t maxTotalBytes, RecordStats& stats)
    : maxTotalBytes_(maxTotalBytes), stats_(stats) {
  const fs::path p(path);
  ext_ = p.extension().string();
  prefix_ = (p.parent_path() / p.stem()).string() + "-";
  // Files of earlier runs count against the cap and set the next sequence number.
  const fs::path dir = p.parent_path().empty() ? fs::path(".") : p.parent_path();
  const std::string stemDash = p.stem().string() + "-";
  std::vector<File> found;
  std::error_code ec;
  for (const auto& de : fs::directory_iterator(dir, ec)) {
    const std::string name = de.path().filename().string();
    if (!name.starts_with(stemDash) || !name.ends_with(ext_) || name.size() < stemDash.size() + 7 + ext_.size()) {
      continue;
    }
    const std::string rest = name.substr(stemDash.size(), name.size() - stemDash.size() - ext_.size());
    const size_t dash = rest.find('-');
    if (dash == 0 || dash == std::string::npos ||
        !std::all_of(rest.begin(), rest.begin() + static_cast<long>(dash), [](char c) { return c >= '0' && c <= '9'; })) {
      continue;
    }
    std::error_code sec;
    const uint64_t size = de.file_size(sec);
    found.push_back({std::stoull(rest.substr(0, dash)), (dir / name).string(), sec ? 0 : size});
  }
  std::sort(found.begin(), found.end(), [](const File& a, const File& b) { return a.seq < b.seq; });
  for (auto& f : found) {
    nextSeq_ = f.seq + 1;
    closedBytes_ += f.bytes;
    files_.push_back(std::move(f));
  }
  stats_.diskBytes.store(static_cast<int64_t>(closedBytes_), std::memory_order_relaxed);
}

std::string RotatingFiles::nextPath(int64_t unixNs) {
  const time_t t = static_cast<time_t>(unixNs / 1'000'000'000);
  tm utc{};
  gmtime_r(&t, &utc);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%06llu-%04d%02d%02dT%02d%02d%02dZ", static_cast<unsigned long long>(nextSeq_++),
                utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec);
  return prefix_ + buf + ext_;
}

void RotatingFiles::closed(const std::string& path, uint64_t bytes) {
  const size_t dash = path.find('-', prefix_.size());
  const uint64_t seq = std::stoull(path.substr(prefix_.size(), dash - prefix_.size()));
  files_.push_back({seq, path, bytes});
  closedBytes_ += bytes;
}

void RotatingFiles::enforceCap(uint64_t openBytes) {
  while (!files_.empty() && closedBytes_ + openBytes > maxTotalBytes_) {
    const File f = files_.front();
    files_.pop_front();
    closedBytes_ -= f.bytes;
    // A file someone else already removed still leaves our accounting.
    if (unlink(f.path.c_str()) == 0) {
      stats_.filesDeleted.fetch_add(1, std::memory_order_relaxed);
      stats_.bytesDeleted.fetch_add(f.bytes, std::memory_order_relaxed);
    }
  }
  stats_.diskBytes.store(static_cast<int64_t>(closedBytes_ + openBytes), std::memory_order_relaxed);
}

}  // namespace shadowtap::record
