#include "record/rotating_files.h"

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <vector>

namespace shadowtap::record {

namespace fs = std::filesystem;

namespace {

constexpr size_t kStampLength = 16;  // "20240501T120000Z"

// The sequence number as nextPath writes it: at least 6 digits, zero-padded.
std::string seqField(uint64_t seq) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "%06llu", static_cast<unsigned long long>(seq));
  return buf;
}

bool isDigit(char c) { return c >= '0' && c <= '9'; }

// "YYYYMMDDTHHMMSSZ".
bool isStamp(std::string_view s) {
  if (s.size() != kStampLength || s[8] != 'T' || s[15] != 'Z') {
    return false;
  }
  return std::all_of(s.begin(), s.begin() + 8, isDigit) && std::all_of(s.begin() + 9, s.begin() + 15, isDigit);
}

}  // namespace

std::optional<uint64_t> RotatingFiles::sequenceOf(std::string_view name) const {
  // STEM-SEQ-STAMP.EXT, exactly as nextPath writes it: anything else (another
  // recording's files, such as STEM-2-SEQ-STAMP.EXT) is not ours.
  if (!name.starts_with(stemDash_) || !name.ends_with(ext_) ||
      name.size() < stemDash_.size() + 6 + 1 + kStampLength + ext_.size()) {
    return std::nullopt;
  }
  name.remove_prefix(stemDash_.size());
  name.remove_suffix(ext_.size());
  const std::string_view stamp = name.substr(name.size() - kStampLength);
  const std::string_view seq = name.substr(0, name.size() - kStampLength - 1);
  uint64_t n = 0;
  const auto [end, ec] = std::from_chars(seq.data(), seq.data() + seq.size(), n);
  if (name[seq.size()] != '-' || !isStamp(stamp) || ec != std::errc() || end != seq.data() + seq.size() ||
      seqField(n) != seq) {
    return std::nullopt;
  }
  return n;
}

RotatingFiles::RotatingFiles(const std::string& path, uint64_t maxTotalBytes, RecordStats& stats)
    : maxTotalBytes_(maxTotalBytes), stats_(stats) {
  const fs::path p(path);
  ext_ = p.extension().string();
  prefix_ = (p.parent_path() / p.stem()).string() + "-";
  stemDash_ = p.stem().string() + "-";
  // Files of earlier runs count against the cap and set the next sequence number.
  const fs::path dir = p.parent_path().empty() ? fs::path(".") : p.parent_path();
  std::vector<File> found;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const std::optional<uint64_t> seq = sequenceOf(name);
    if (!seq || *seq == UINT64_MAX) {
      continue;
    }
    std::error_code sec;
    const uint64_t size = it->file_size(sec);
    found.push_back({*seq, (dir / name).string(), sec ? 0 : size});
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
  char stamp[64];
  std::snprintf(stamp, sizeof(stamp), "-%04d%02d%02dT%02d%02d%02dZ", utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday,
                utc.tm_hour, utc.tm_min, utc.tm_sec);
  lastSeq_ = nextSeq_++;
  return prefix_ + seqField(lastSeq_) + stamp + ext_;
}

void RotatingFiles::closed(const std::string& path, uint64_t bytes) {
  // One file is open at a time: the one closed got the last name nextPath gave.
  files_.push_back({lastSeq_, path, bytes});
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
