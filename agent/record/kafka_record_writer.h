#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "base/stats_sink.h"
#include "record/record_writer.h"

// librdkafka's handles, kept out of this header.
struct rd_kafka_s;
struct rd_kafka_topic_s;

namespace shadowtap::record {

// Counters by librdkafka error, named as librdkafka names them, lower case
// and without the leading '_' of its own (client-side) errors: "queue_full",
// "msg_timed_out", "topic_authorization_failed". Bounded by librdkafka's
// error enum. Written by the writer thread, read by anyone.
class ErrorCounts {
 public:
  void add(int err, uint64_t n = 1);
  std::map<std::string, uint64_t> snapshot() const;
  uint64_t total() const;
  static std::string reasonName(int err);

 private:
  mutable std::mutex mu_;
  std::map<int, uint64_t> counts_;
};

// The Kafka recorder's own counters (RecordStats has the outcome of every
// record: written = acknowledged by the brokers as --record-kafka-acks asks,
// writeErrors = not delivered, by reason in `undelivered`).
struct KafkaStats {
  ErrorCounts undelivered;  // each record not delivered, by reason
  ErrorCounts errors;       // errors of the client (brokers down, TLS, SASL), by reason
  // Handed to librdkafka, delivery not yet reported.
  std::atomic<int64_t> producerQueueMessages{0};
  std::atomic<int64_t> producerQueueBytes{0};
};

// The Kafka recorder: each captured request (HTTP/1 and HTTP/2) is one
// message, its value the JSON lines object (toJsonLine; redacted as files
// are), its key the connection ("198.18.0.1:40000->198.18.0.2:8000", so one
// connection's requests land in one partition, in order), its timestamp the
// request's, with headers "node" (KafkaOptions::nodeName) and "rule" (the
// rule id, decimal).
//
// Never in the way: the capture thread only copies into the base class's
// bounded hand-off queue; the writer thread formats and hands messages to
// librdkafka without ever blocking (a full producer queue fails the message
// at once, counted as undelivered "queue_full"), and serves delivery reports
// every tick. librdkafka's own queue is bounded (kafkaProducerConfig). On
// close the queued messages get KafkaOptions::drainTimeoutMs to be delivered;
// what is left is purged and counted ("purge_queue", "purge_inflight").
// Once closed: offered == written + dropped + malformed + writeErrors.
class KafkaRecordWriter final : public RecordWriter {
 public:
  // Fills opts.kafka's brokers and topic from opts.path, configures
  // librdkafka and creates the producer (which connects in the background: a
  // broker that is down is not an error here). nullptr and *error (one line)
  // when librdkafka refuses a setting. Not started.
  static std::unique_ptr<KafkaRecordWriter> create(RecordOptions opts, std::string* error);
  ~KafkaRecordWriter() override;

  void exportStats(base::StatsSink& out) const override;
  const KafkaStats& kafkaStats() const { return kstats_; }
  const std::string& nodeName() const { return nodeName_; }

 private:
  explicit KafkaRecordWriter(RecordOptions opts);

  void writeBatch(std::vector<Item>& batch, uint64_t now) override;
  void finish(uint64_t now) override;
  uint64_t tickNs() const override { return 100'000'000; }
  void produce(Item& item);
  void logProblems(uint64_t now);

  friend struct KafkaCallbacks;  // librdkafka's callbacks (kafka_record_writer.cc)
  void delivered(int err, size_t bytes);

  Redactor redactor_;
  std::string nodeName_;
  KafkaStats kstats_;
  rd_kafka_s* rk_ = nullptr;
  rd_kafka_topic_s* topic_ = nullptr;
  bool destroyed_ = false;  // delivery reports after this are not counted

  // Writer thread: rate limit of the warning lines.
  uint64_t lastLogNs_ = 0;
  uint64_t loggedUndelivered_ = 0;
  uint64_t loggedErrors_ = 0;
};

}  // namespace shadowtap::record
