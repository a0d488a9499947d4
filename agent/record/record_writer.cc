#include "record/record_writer.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "record/h2_record.h"
#include "record/kafka_record_writer.h"
#include "record/pcap_writer.h"
#include "record/record_format.h"

namespace shadowtap::record {
namespace {

constexpr size_t kFileBuffer = 1 << 20;
constexpr uint64_t kReopenBackoffNs = 1'000'000'000;
constexpr uint64_t kErrorLogEveryNs = 10'000'000'000;
// Per queued record, beyond its payload: what a queue entry costs anyway.
constexpr size_t kItemOverhead = 128;

uint64_t clockNs(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

int64_t measureRealtimeOffset() {
  const int64_t m0 = static_cast<int64_t>(clockNs(CLOCK_MONOTONIC));
  const int64_t r = static_cast<int64_t>(clockNs(CLOCK_REALTIME));
  const int64_t m1 = static_cast<int64_t>(clockNs(CLOCK_MONOTONIC));
  return r - (m0 + (m1 - m0) / 2);
}

std::FILE* openBuffered(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "wbx");  // never overwrite a file
  if (f != nullptr) {
    std::setvbuf(f, nullptr, _IOFBF, kFileBuffer);
  }
  return f;
}

// Size of the file at `path`; 0 when it cannot be told (gone).
uint64_t fileSize(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

bool writeAll(std::FILE* f, std::string_view s, uint64_t& bytes) {
  if (std::fwrite(s.data(), 1, s.size(), f) != s.size()) {
    std::clearerr(f);
    return false;
  }
  bytes += s.size();
  return true;
}

}  // namespace

RecordWriter::RecordWriter(RecordOptions opts)
    : opts_(std::move(opts)),
      realtimeOffsetNs_(opts_.realtimeOffsetNs ? *opts_.realtimeOffsetNs : measureRealtimeOffset()) {}

RecordWriter::~RecordWriter() {
  // Derived classes call close() in their destructors (their hooks must
  // still exist while the last file is finished); this is a safety net.
  close();
}

void RecordWriter::exportStats(base::StatsSink& out) const { record::exportStats(stats_, out); }

uint64_t RecordWriter::now() const { return opts_.clock ? opts_.clock() : clockNs(CLOCK_MONOTONIC); }

bool RecordWriter::start() {
  if (started_) {
    return false;
  }
  try {
    thread_ = std::thread([this] { run(); });
  } catch (const std::system_error& e) {
    spdlog::error("record {}: cannot start the writer thread: {}", opts_.path, e.what());
    return false;
  }
  started_ = true;
  return true;
}

void RecordWriter::enqueue(Item&& item, size_t bytes) {
  stats_.offered.fetch_add(1, std::memory_order_relaxed);
  bool wake = false;
  {
    std::lock_guard lk(mu_);
    if (closing_ || !started_ || queue_.size() >= opts_.queueCapacity || queuedBytes_ + bytes > opts_.queueBytes) {
      stats_.dropped.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    queue_.push_back(std::move(item));
    queuedBytes_ += bytes;
    // Under the lock, as the writer's subtraction is: a scrape never sees the
    // gauges below zero.
    stats_.queueDepth.fetch_add(1, std::memory_order_relaxed);
    stats_.queueBytes.fetch_add(static_cast<int64_t>(bytes), std::memory_order_relaxed);
    wake = waiting_;
    waiting_ = false;
  }
  if (wake) {
    cv_.notify_one();
  }
}

void RecordWriter::onRequest(model::Request&& request) {
  if (wantsSegments()) {
    return;
  }
  size_t bytes = request.bytes.size() + request.body.size() + kItemOverhead;
  for (const auto* fields : {&request.headers, &request.trailers}) {
    for (const model::HeaderField& f : *fields) {
      bytes += f.name.size() + f.value.size() + sizeof(model::HeaderField);
    }
  }
  enqueue(Item(std::in_place_type<model::Request>, std::move(request)), bytes);
}

void RecordWriter::record(const model::Request& request) {
  if (wantsSegments()) {
    return;
  }
  if (request.isStreamed()) {
    // Over --max-request-mib: its body is streamed to the mirror, never held whole.
    stats_.streamedNotRecorded.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  model::Request copy = request;
  onRequest(std::move(copy));
}

std::optional<RecordedRequest> RecordWriter::recordedFrom(Item& item, const Redactor& redactor) {
  std::optional<RecordedRequest> rec;
  if (auto* req = std::get_if<model::Request>(&item)) {
    rec = req->isHttp2() ? fromH2Request(std::move(*req), realtimeOffsetNs_, opts_.keepBodies)
                         : splitRequest(*req, realtimeOffsetNs_, opts_.keepBodies);
  }
  if (!rec) {
    return rec;
  }
  stats_.redactedValues.fetch_add(redactor.apply(*rec), std::memory_order_relaxed);
  if (const uint64_t n = fieldsNotUtf8(*rec); n != 0) {
    stats_.notUtf8Fields.fetch_add(n, std::memory_order_relaxed);
  }
  if (!rec->bodyKept && rec->bodyLength > 0) {
    stats_.bodiesOmitted.fetch_add(1, std::memory_order_relaxed);
  }
  return rec;
}

void RecordWriter::onSegment(const flow::Segment& s) {
  if (!wantsSegments()) {
    return;
  }
  SegmentCopy c;
  c.key = s.key;
  c.seq = s.seq;
  c.ack = s.ack;
  c.flags = s.flags;
  c.tsNs = s.tsNs;
  c.payload.assign(reinterpret_cast<const char*>(s.payload.data()), s.payload.size());
  const size_t bytes = c.payload.size() + kItemOverhead;
  enqueue(Item(std::in_place_type<SegmentCopy>, std::move(c)), bytes);
}

void RecordWriter::close() {
  {
    std::lock_guard lk(mu_);
    if (closing_) {
      return;
    }
    closing_ = true;
    closeRequestedNs_ = clockNs(CLOCK_MONOTONIC);
  }
  cv_.notify_one();
  if (thread_.joinable()) {
    thread_.join();
  }
}

void RecordWriter::run() {
  std::vector<Item> batch;
  while (true) {
    bool done;
    {
      std::unique_lock lk(mu_);
      auto ready = [&] { return !queue_.empty() || closing_; };
      if (!ready()) {
        waiting_ = true;
        if (const uint64_t tick = tickNs(); tick != 0) {
          cv_.wait_for(lk, std::chrono::nanoseconds(tick), ready);
        } else {
          cv_.wait(lk, ready);
        }
        waiting_ = false;
      }
      batch.swap(queue_);
      stats_.queueDepth.fetch_sub(static_cast<int64_t>(batch.size()), std::memory_order_relaxed);
      stats_.queueBytes.fetch_sub(static_cast<int64_t>(queuedBytes_), std::memory_order_relaxed);
      queuedBytes_ = 0;
      done = closing_ && batch.empty();
    }
    writeBatch(batch, now());
    batch.clear();
    if (done) {
      break;
    }
  }
  finish(now());
}

// ---- rotating files ----

FileRecordWriter::FileRecordWriter(RecordOptions opts)
    : RecordWriter(std::move(opts)), files_(options().path, options().maxTotalBytes, mutableStats()) {}

uint64_t FileRecordWriter::tickNs() const {
  // Close a file on time even when no traffic comes.
  return options().rotateSeconds != 0 && fileOpen_ ? 200'000'000 : 0;
}

void FileRecordWriter::writeBatch(std::vector<Item>& batch, uint64_t t) {
  const uint64_t rotateNs = uint64_t{options().rotateSeconds} * 1'000'000'000ULL;
  if (fileOpen_ && rotateNs != 0 && t - openedAtNs_ >= rotateNs) {
    finishFile(true, t);
  }
  for (Item& item : batch) {
    writeOne(item, t);
  }
  if (!batch.empty() && fileOpen_) {
    mutableStats().flushes.fetch_add(1, std::memory_order_relaxed);
    flushPending(t);
  }
}

void FileRecordWriter::finish(uint64_t t) {
  if (fileOpen_) {
    finishFile(false, t);
  }
}

bool FileRecordWriter::logNow(uint64_t t) {
  if (lastErrorLogNs_ != 0 && t - lastErrorLogNs_ < kErrorLogEveryNs) {
    return false;
  }
  lastErrorLogNs_ = t;
  return true;
}

bool FileRecordWriter::openNext(uint64_t t) {
  RecordStats& stats = mutableStats();
  if (t < reopenAfterNs_) {
    return false;
  }
  const std::string path = files_.nextPath(static_cast<int64_t>(t) + realtimeOffsetNs());
  if (!openFile(path)) {
    const int err = errno;
    reopenAfterNs_ = t + kReopenBackoffNs;
    if (logNow(t)) {
      spdlog::warn("record: cannot open {}: {} (records are counted as write errors)", path, std::strerror(err));
    }
    return false;
  }
  fileOpen_ = true;
  currentPath_ = path;
  openedAtNs_ = t;
  headBytes_ = fileBytes();  // pendingEnds_ and flushedBytes_ were reset by forgetFile
  stats.filesOpened.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void FileRecordWriter::writeOne(Item& item, uint64_t t) {
  RecordStats& stats = mutableStats();
  if (!fileOpen_ && !openNext(t)) {
    stats.writeErrors.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  switch (writeItem(item)) {
    case WriteResult::kOk:
      pendingEnds_.push_back(fileBytes());  // written once flushed
      break;
    case WriteResult::kMalformed:
      stats.malformed.fetch_add(1, std::memory_order_relaxed);
      break;
    case WriteResult::kError:
      stats.writeErrors.fetch_add(1, std::memory_order_relaxed);
      abandonFile(t);
      return;
  }
  if (fileBytes() >= options().maxFileBytes) {
    finishFile(true, t);
  } else {
    files_.enforceCap(fileBytes());
  }
}

bool FileRecordWriter::flushPending(uint64_t t) {
  if (!flushFile()) {
    abandonFile(t);
    return false;
  }
  RecordStats& stats = mutableStats();
  stats.written.fetch_add(pendingEnds_.size(), std::memory_order_relaxed);
  stats.bytesWritten.fetch_add(fileBytes() - flushedBytes_, std::memory_order_relaxed);
  pendingEnds_.clear();
  flushedBytes_ = fileBytes();
  return true;
}

void FileRecordWriter::finishFile(bool rotation, uint64_t t) {
  if (!flushPending(t)) {
    return;
  }
  // Every record is in the file now; closing adds the trailer (HAR's closing
  // line) at most, so a failed close loses no record.
  uint64_t bytes = 0;
  if (closeFile()) {
    bytes = fileBytes();  // with the trailer the close wrote
  } else {
    const int err = errno;
    bytes = std::max(flushedBytes_, fileSize(currentPath_));
    if (logNow(t)) {
      spdlog::warn("record: cannot close {}: {} (its records are in it; a HAR file may lack its closing line)",
                   currentPath_, std::strerror(err));
    }
  }
  mutableStats().bytesWritten.fetch_add(bytes - flushedBytes_, std::memory_order_relaxed);
  forgetFile(bytes, rotation);
}

void FileRecordWriter::abandonFile(uint64_t t) {
  const int err = errno;
  RecordStats& stats = mutableStats();
  // Measured before closing: the close may still append a trailer.
  const uint64_t inFile = fileSize(currentPath_);
  const auto whole = std::upper_bound(pendingEnds_.begin(), pendingEnds_.end(), inFile);
  const uint64_t kept = static_cast<uint64_t>(whole - pendingEnds_.begin());
  const uint64_t lost = pendingEnds_.size() - kept;
  // With no whole record in it, the file keeps its head (as much of it as
  // reached the file): a pcap or HAR file without one is no file of its kind.
  const uint64_t keepBytes =
      kept != 0 ? pendingEnds_[kept - 1] : std::max(flushedBytes_, std::min(headBytes_, inFile));
  stats.written.fetch_add(kept, std::memory_order_relaxed);
  stats.writeErrors.fetch_add(lost, std::memory_order_relaxed);
  stats.bytesWritten.fetch_add(keepBytes - flushedBytes_, std::memory_order_relaxed);
  closeFile();  // fails too, most likely; whatever it wrote is cut off next
  // Half a record (or a trailer after one) would make the file unreadable.
  const bool cut = ::truncate(currentPath_.c_str(), static_cast<off_t>(keepBytes)) == 0;
  if (logNow(t)) {
    spdlog::warn("record: writing {} failed: {} ({} buffered record(s) lost, counted as write errors; file {} at "
                 "{} bytes; a new file in 1 s)",
                 currentPath_, std::strerror(err), lost, cut ? "cut back" : "left", keepBytes);
  }
  reopenAfterNs_ = t + kReopenBackoffNs;
  forgetFile(cut ? keepBytes : std::max(keepBytes, inFile), false);
}

void FileRecordWriter::forgetFile(uint64_t bytes, bool rotation) {
  fileOpen_ = false;
  pendingEnds_.clear();
  flushedBytes_ = 0;
  if (rotation) {
    mutableStats().rotations.fetch_add(1, std::memory_order_relaxed);
  }
  files_.closed(currentPath_, bytes);
  files_.enforceCap(0);
}

// ---- HAR and JSON lines ----

LineRecordWriter::LineRecordWriter(RecordOptions opts)
    : FileRecordWriter(std::move(opts)),
      har_(options().format == RecordFormat::kHar),
      redactor_(options().redact, options().redactHeaders, options().redactQuery) {}

LineRecordWriter::~LineRecordWriter() { close(); }

bool LineRecordWriter::openFile(const std::string& path) {
  f_ = openBuffered(path);
  bytes_ = 0;
  entries_ = 0;
  if (f_ == nullptr) {
    return false;
  }
  if (har_ && !writeAll(f_, harFileHead(), bytes_)) {
    std::fclose(f_);
    f_ = nullptr;
    return false;
  }
  return true;
}

FileRecordWriter::WriteResult LineRecordWriter::writeItem(Item& item) {
  auto rec = recordedFrom(item, redactor_);
  if (!rec) {
    return WriteResult::kMalformed;
  }
  std::string line;
  if (har_) {
    line = entries_ == 0 ? std::string() : std::string(",");  // every HAR entry after the first
    line += harEntry(*rec);
  } else {
    line = toJsonLine(*rec);
  }
  line += '\n';
  if (!writeAll(f_, line, bytes_)) {
    return WriteResult::kError;
  }
  ++entries_;
  return WriteResult::kOk;
}

bool LineRecordWriter::flushFile() { return std::fflush(f_) == 0; }

bool LineRecordWriter::closeFile() {
  if (f_ == nullptr) {
    return true;
  }
  bool ok = !har_ || writeAll(f_, harFileTail(), bytes_);
  ok = std::fclose(f_) == 0 && ok;
  f_ = nullptr;
  return ok;
}

std::unique_ptr<RecordWriter> makeRecordWriter(RecordOptions opts, std::string* error) {
  if (std::string e = checkRecordOptions(opts); !e.empty()) {
    *error = e;
    return nullptr;
  }
  std::unique_ptr<RecordWriter> w;
  switch (opts.format) {
    case RecordFormat::kHar:
    case RecordFormat::kJsonl:
      w = std::make_unique<LineRecordWriter>(std::move(opts));
      break;
    case RecordFormat::kPcap:
      w = std::make_unique<PcapWriter>(std::move(opts));
      break;
    case RecordFormat::kKafka:
      w = KafkaRecordWriter::create(std::move(opts), error);
      if (!w) {
        return nullptr;
      }
      break;
  }
  if (!w->start()) {
    *error = "--record " + w->options().path + ": cannot start the writer thread";
    return nullptr;
  }
  return w;
}

}  // namespace shadowtap::record
