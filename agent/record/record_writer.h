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
// and counted) and return; a writer thread of its own takes the queued
// records in batches and hands them to the subclass (files, Kafka), which
// redacts, formats and writes them. A slow disk or broker therefore costs the
// capture thread one short mutex hold per record and shows up as `dropped` /
// `writeErrors`.
//
// Threads: onRequest/onSegment from one thread (the capture thread); close()
// from the control thread; stats() from anywhere. The hooks run on the
// writer thread only.
class RecordWriter : public model::RequestSink {
 public:
  ~RecordWriter() override;
  RecordWriter(const RecordWriter&) = delete;
  RecordWriter& operator=(const RecordWriter&) = delete;

  // Starts the writer thread. False when it cannot be started.
  bool start();

  // HAR, JSON lines and Kafka recorders take requests; the pcap recorder
  // ignores them (uncounted) and takes segments instead. See wantsSegments().
  void onRequest(model::Request&& request) override;
  // The same, copying the request (when the caller still needs it to mirror).
  // Redaction, hashing and formatting happen on the writer thread.
  void record(const model::Request& request);
  void onSegment(const flow::Segment& segment);
  virtual bool wantsSegments() const { return false; }

  // Writes out everything queued, lets the subclass finish (a HAR file gets
  // its closing brackets, Kafka flushes within its drain time) and joins the
  // writer thread. Idempotent; later records are dropped (counted).
  void close();

  const RecordStats& stats() const { return stats_; }
  const RecordOptions& options() const { return opts_; }
  // The recorder's counters into the metrics registry (exportStats(stats()),
  // and a subclass's own).
  virtual void exportStats(base::StatsSink& out) const;

 protected:
  explicit RecordWriter(RecordOptions opts);

  using Item = std::variant<model::Request, SegmentCopy>;

  // Writer thread hooks. writeBatch takes what the queue held (empty when the
  // thread woke for a tick); finish runs once after the last batch, on close.
  virtual void writeBatch(std::vector<Item>& batch, uint64_t now) = 0;
  virtual void finish(uint64_t now) = 0;
  // While this returns non-zero the idle writer thread wakes at least this
  // often (ns) and calls writeBatch with an empty batch.
  virtual uint64_t tickNs() const { return 0; }

  uint64_t now() const;
  // CLOCK_MONOTONIC (never the injected clock) when close() was called; for
  // finish() to keep a drain time.
  uint64_t closeRequestedNs() const { return closeRequestedNs_; }
  int64_t realtimeOffsetNs() const { return realtimeOffsetNs_; }
  RecordStats& mutableStats() { return stats_; }
  // A request item (HTTP/1 or HTTP/2) as fields, redacted, with
  // redactedValues/bodiesOmitted counted; nullopt for a malformed request or
  // a segment.
  std::optional<RecordedRequest> recordedFrom(Item& item, const Redactor& redactor);

 private:
  void enqueue(Item&& item, size_t bytes);
  void run();

  RecordOptions opts_;
  RecordStats stats_;
  int64_t realtimeOffsetNs_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Item> queue_;
  size_t queuedBytes_ = 0;
  bool closing_ = false;
  uint64_t closeRequestedNs_ = 0;
  bool waiting_ = false;
  std::thread thread_;
  bool started_ = false;
};

// A recorder to rotating files (RotatingFiles: size and time rotation, the
// disk cap): writes each batch through the subclass's file hooks, flushes
// whenever the queue runs empty, and after a failed open or write starts over
// with a new file at most once a second.
//
// A record counts as written once a flush got it to the file, not when it
// enters the stdio buffer. When a write, flush or close fails (disk full),
// the records that reached the file before the failure are written, the rest
// of the buffer's are write errors (each once), and the file is cut back to
// its last whole record, so a failure never leaves half a record behind.
class FileRecordWriter : public RecordWriter {
 public:
  // Prefix and extension of the recording's file names ("dir/traffic-", ".har").
  std::string filePrefix() const { return files_.prefix(); }
  std::string fileExtension() const { return files_.extension(); }

 protected:
  explicit FileRecordWriter(RecordOptions opts);

  enum class WriteResult { kOk, kMalformed, kError };

  // openFile writes the file header; writeItem one record; closeFile the
  // trailer (false on any failure of the write or close).
  virtual bool openFile(const std::string& path) = 0;
  virtual WriteResult writeItem(Item& item) = 0;
  virtual bool flushFile() = 0;
  virtual bool closeFile() = 0;
  virtual uint64_t fileBytes() const = 0;

 private:
  void writeBatch(std::vector<Item>& batch, uint64_t now) final;
  void finish(uint64_t now) final;
  uint64_t tickNs() const final;
  void writeOne(Item& item, uint64_t now);
  bool openNext(uint64_t now);
  // Flushes the open file: the buffered records are written. False when the
  // flush failed (the file is abandoned).
  bool flushPending(uint64_t now);
  // Flushes and closes the open file (rotation: by size or time).
  void finishFile(bool rotation, uint64_t now);
  // After a failed write, flush or close: settles the buffered records
  // (written or write errors), cuts the file back to its last whole record,
  // closes it and backs off before the next open.
  void abandonFile(uint64_t now);
  void forgetFile(uint64_t bytes, bool rotation);
  bool logNow(uint64_t now);

  RotatingFiles files_;
  bool fileOpen_ = false;
  std::string currentPath_;
  uint64_t openedAtNs_ = 0;
  uint64_t reopenAfterNs_ = 0;
  uint64_t lastErrorLogNs_ = 0;
  // Records of the open file in the stdio buffer, not yet flushed: the file
  // offset where each ends (ascending).
  std::vector<uint64_t> pendingEnds_;
  uint64_t flushedBytes_ = 0;  // of the open file, known to be in it
  uint64_t headBytes_ = 0;     // the open file's head (pcap header, HAR's opening), written at open
};

// HAR 1.2 and JSON lines recorders (opts.format; see record_format.h for the
// layouts): one text line per request. They differ only in the file's head and
// tail (HAR's opening and closing lines, nothing for JSON lines) and in how a
// request becomes a line.
class LineRecordWriter final : public FileRecordWriter {
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
