#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "flow/segment.h"
#include "model/request.h"
#include "model/request.h"
#include "record/record_options.h"
#include "record/record_stats.h"
#include "record/recorded_request.h"
#include "record/rotating_files.h"

namespace shadowtap::record {

// A captured segment, copied off the capture thread's buffer.
struct SegmentCopy {
  model::FlowKey key;
  uint32_t seq = 0;
  uint32_t ack = 0;
  uint8_t flags = 0;
  uint64_t tsNs = 0;
  std::string payload;
};

// A recorder: a side output that never blocks the capture thread for long.
// onRequest/onSegment copy the record into a bounded hand-off queue (limits
// RecordOptions::queueCapacity/queueBytes; beyond them the record is dropped
// and counted) and return; a writer thread of its own redacts, formats and
// writes through a 1 MiB stdio buffer, flushes whenever the queue runs empty,
// rotates files by size and time and keeps the total under the disk cap.
// A slow or full disk therefore costs the capture thread one short mutex
// hold per record and shows up as `dropped` / `writeErrors`.
//
// Threads: onRequest/onSegment from one thread (the capture thread); close()
// from the control thread; stats() from anywhere.
class RecordWriter : public model::RequestSink {
 public:
  ~RecordWriter() override;
  RecordWriter(const RecordWriter&) = delete;
  RecordWriter& operator=(const RecordWriter&) = delete;

  // Starts the writer thread. False when it cannot be started.
  bool start();

  // HAR and JSON lines recorders take requests; the pcap recorder ignores them
  // (uncounted) and takes segments instead. See wantsSegments().
  void onRequest(model::Request&& request) override;
  // The same, copying the request (when the caller still needs it to mirror).
  // Redaction, hashing and formatting happen on the writer thread.
  void record(const model::Request& request);
  void onSegment(const flow::Segment& segment);
  virtual bool wantsSegments() const { return false; }

  // Writes out everything queued, finishes the open file (a HAR file gets its
  // closing brackets) and joins the writer thread. Idempotent; later records
  // are dropped (counted).
  void close();

  const RecordStats& stats() const { return stats_; }
  const RecordOptions& options() const { return opts_; }
  // Prefix and extension of the recording's file names ("dir/traffic-", ".har").
  std::string filePrefix() const { return files_.prefix(); }
  std::string fileExtension() const { return files_.extension(); }

 protected:
  explicit RecordWriter(RecordOptions opts);

  enum class WriteResult { kOk, kMalformed, kError };
  using Item = std::variant<model::Request, SegmentCopy>;

  // Writer thread hooks. openFile writes the file header; writeItem one record;
  // closeFile the trailer (false on any failure of the write or close).
  virtual bool openFile(const std::string& path) = 0;
  virtual WriteResult writeItem(Item& item) = 0;
  virtual bool flushFile() = 0;
  virtual bool closeFile() = 0;
  virtual uint64_t fileBytes() const = 0;

  int64_t realtimeOffsetNs() const { return realtimeOffsetNs_; }
  RecordStats& mutableStats() { return stats_; }
  // A request item (HTTP/1 or HTTP/2) as fields, redacted, with
  // redactedValues/bodiesOmitted counted; nullopt for a malformed request or
  // a segment.
  std::optional<RecordedRequest> recordedFrom(Item& item, const Redactor& redactor);

 private:
  void enqueue(Item&& item, size_t bytes);
  void run();
  void writeOne(Item& item, uint64_t now);
  void finishFile(bool rotation);
  uint64_t now() const;

  RecordOptions opts_;
  RecordStats stats_;
  int64_t realtimeOffsetNs_;
  RotatingFiles files_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Item> queue_;
  size_t queuedBytes_ = 0;
  bool closing_ = false;
  bool waiting_ = false;
  std::thread thread_;
  bool started_ = false;

  // Writer thread only.
  bool fileOpen_ = false;
  std::string currentPath_;
  uint64_t openedAtNs_ = 0;
  uint64_t reopenAfterNs_ = 0;
  uint64_t lastErrorLogNs_ = 0;
};

// HAR 1.2 and JSON lines recorders (opts.format; see record_format.h for the
// layouts): one text line per request. They differ only in the file's head and
// tail (HAR's opening and closing lines, nothing for JSON lines) and in how a
// request becomes a line.
class LineRecordWriter final : public RecordWriter {
 public:
  explicit LineRecordWriter(RecordOptions opts);
  ~LineRecordWriter() override;

 private:
  bool openFile(const std::string& path) override;
  WriteResult writeItem(Item& item) override;
  bool flushFile() override;
  bool closeFile() override;
  uint64_t fileBytes() const override { return bytes_; }

  const bool har_;
  Redactor redactor_;
  std::FILE* f_ = nullptr;
  uint64_t bytes_ = 0;
  uint64_t entries_ = 0;  // in the open file
};

// Creates the recorder for opts.format after checkRecordOptions, and starts
// it. nullptr and *error (one line) on failure.
std::unique_ptr<RecordWriter> makeRecordWriter(RecordOptions opts, std::string* error);

}  // namespace shadowtap::record
