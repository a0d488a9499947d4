#include "record/kafka_record_writer.h"

#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>

#include "base/clock.h"
#include "base/counters.h"
#include "record/record_format.h"

namespace shadowtap::record {

namespace {

constexpr uint64_t kLogEveryNs = 10'000'000'000;
// Not a librdkafka error: messages whose delivery report never came before
// the producer was destroyed (the drain time ran out even for the purge).
constexpr int kUnreportedAtExit = -100000;

std::string reasons(const ErrorCounts& counts) {
  std::string out;
  for (const auto& [name, n] : counts.snapshot()) {
    out += (out.empty() ? "" : ", ") + name + " " + std::to_string(n);
  }
  return out;
}

}  // namespace

// librdkafka calls these from rd_kafka_poll/rd_kafka_flush, i.e. on the
// writer thread, except log() (any of its threads).
struct KafkaCallbacks {
  static void delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    static_cast<KafkaRecordWriter*>(opaque)->delivered(m->err, m->len);
  }

  static void error(rd_kafka_t* rk, int err, const char* reason, void* opaque) {
    auto* w = static_cast<KafkaRecordWriter*>(opaque);
    w->kstats_.errors.add(err);
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
      char why[512] = {};
      const rd_kafka_resp_err_t cause = rd_kafka_fatal_error(rk, why, sizeof(why));
      spdlog::error("record {}: the Kafka producer failed for good ({}: {}); every further record is counted as "
                    "undelivered 'fatal'",
                    w->options().path, rd_kafka_err2name(cause), why);
    } else {
      spdlog::debug("record {}: kafka: {} ({})", w->options().path, rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(err)),
                    reason);
    }
  }

  static void log(const rd_kafka_t*, int level, const char* facility, const char* text) {
    // Configuration warnings (at start) are worth a line; the connection
    // chatter is counted through error() and summarised by logProblems.
    if (level <= 4 && std::string_view(facility) == "CONFWARN") {
      spdlog::warn("record kafka: {}", text);
    } else {
      spdlog::debug("record kafka {}: {}", facility, text);
    }
  }
};

// ---- ErrorCounts ----

void ErrorCounts::add(int err, uint64_t n) {
  std::lock_guard lk(mu_);
  counts_[err] += n;
}

std::map<std::string, uint64_t> ErrorCounts::snapshot() const {
  std::lock_guard lk(mu_);
  std::map<std::string, uint64_t> out;
  for (const auto& [err, n] : counts_) {
    out[reasonName(err)] += n;
  }
  return out;
}

uint64_t ErrorCounts::total() const {
  std::lock_guard lk(mu_);
  uint64_t t = 0;
  for (const auto& [err, n] : counts_) {
    t += n;
  }
  return t;
}

std::string ErrorCounts::reasonName(int err) {
  if (err == kUnreportedAtExit) {
    return "unreported_at_exit";
  }
  std::string name = rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(err));
  if (!name.empty() && name.front() == '_') {
    name.erase(0, 1);
  }
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
  return name.empty() ? "error_" + std::to_string(err) : name;
}

// ---- KafkaRecordWriter ----

KafkaRecordWriter::KafkaRecordWriter(RecordOptions opts)
    : RecordWriter(std::move(opts)),
      redactor_(options().redact, options().redactHeaders, options().redactQuery),
      nodeName_(options().kafka.nodeName.empty() ? defaultNodeName() : options().kafka.nodeName) {}

std::unique_ptr<KafkaRecordWriter> KafkaRecordWriter::create(RecordOptions opts, std::string* error) {
  if (std::string why = parseKafkaTarget(opts.path, opts.kafka); !why.empty()) {
    *error = why;
    return nullptr;
  }
  std::unique_ptr<KafkaRecordWriter> w(new KafkaRecordWriter(std::move(opts)));
  const KafkaOptions& k = w->options().kafka;
  char errstr[512] = {};
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (const KafkaProperty& p : kafkaProducerConfig(k)) {
    if (rd_kafka_conf_set(conf, p.key.c_str(), p.value.c_str(), errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
      *error = p.source + ": " + errstr;
      rd_kafka_conf_destroy(conf);
      return nullptr;
    }
  }
  rd_kafka_conf_set_opaque(conf, w.get());
  rd_kafka_conf_set_dr_msg_cb(conf, &KafkaCallbacks::delivery);
  rd_kafka_conf_set_error_cb(conf, &KafkaCallbacks::error);
  rd_kafka_conf_set_log_cb(conf, &KafkaCallbacks::log);
  // rd_kafka_new takes conf only when it succeeds.
  w->rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
  if (w->rk_ == nullptr) {
    rd_kafka_conf_destroy(conf);
    *error = "--record " + w->options().path + ": cannot create the Kafka producer (check the TLS/SASL "
             "--record-kafka-opt settings): " + errstr;
    return nullptr;
  }
  w->topic_ = rd_kafka_topic_new(w->rk_, k.topic.c_str(), nullptr);
  if (w->topic_ == nullptr) {
    *error = "--record " + w->options().path + ": " + rd_kafka_err2str(rd_kafka_last_error());
    return nullptr;
  }
  return w;
}

KafkaRecordWriter::~KafkaRecordWriter() {
  close();
  // Only when close() did not run finish() (never started, or create failed).
  destroyed_ = true;
  if (topic_ != nullptr) {
    rd_kafka_topic_destroy(topic_);
  }
  if (rk_ != nullptr) {
    rd_kafka_destroy(rk_);
  }
}

void KafkaRecordWriter::writeBatch(std::vector<Item>& batch, uint64_t now) {
  for (Item& item : batch) {
    produce(item);
  }
  rd_kafka_poll(rk_, 0);  // delivery reports and errors, never waits
  logProblems(now);
}

void KafkaRecordWriter::produce(Item& item) {
  RecordStats& stats = mutableStats();
  const std::optional<RecordedRequest> rec = recordedFrom(item, redactor_);
  if (!rec) {
    stats.malformed.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const std::string value = toJsonLine(*rec);
  const std::string rule = std::to_string(rec->ruleId);
  const rd_kafka_resp_err_t err = rd_kafka_producev(
      rk_, RD_KAFKA_V_RKT(topic_), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
      RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
      RD_KAFKA_V_KEY(rec->flow.data(), rec->flow.size()), RD_KAFKA_V_TIMESTAMP(rec->unixNs / 1'000'000),
      RD_KAFKA_V_HEADER("node", nodeName_.data(), static_cast<ssize_t>(nodeName_.size())),
      RD_KAFKA_V_HEADER("rule", rule.data(), static_cast<ssize_t>(rule.size())), RD_KAFKA_V_END);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    // Most often queue_full: the brokers are down or slow and librdkafka's
    // bounded queue is full. Never wait for room: drop and count.
    kstats_.undelivered.add(err);
    stats.writeErrors.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  kstats_.producerQueueMessages.fetch_add(1, std::memory_order_relaxed);
  kstats_.producerQueueBytes.fetch_add(static_cast<int64_t>(value.size()), std::memory_order_relaxed);
}

void KafkaRecordWriter::delivered(int err, size_t bytes) {
  if (destroyed_) {
    return;
  }
  RecordStats& stats = mutableStats();
  kstats_.producerQueueMessages.fetch_sub(1, std::memory_order_relaxed);
  kstats_.producerQueueBytes.fetch_sub(static_cast<int64_t>(bytes), std::memory_order_relaxed);
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    stats.written.fetch_add(1, std::memory_order_relaxed);
    stats.bytesWritten.fetch_add(bytes, std::memory_order_relaxed);
  } else {
    kstats_.undelivered.add(err);
    stats.writeErrors.fetch_add(1, std::memory_order_relaxed);
  }
}

void KafkaRecordWriter::logProblems(uint64_t now) {
  if (lastLogNs_ != 0 && now - lastLogNs_ < kLogEveryNs) {
    return;
  }
  const uint64_t undelivered = kstats_.undelivered.total();
  const uint64_t errors = kstats_.errors.total();
  if (undelivered == loggedUndelivered_ && errors == loggedErrors_) {
    return;
  }
  lastLogNs_ = now;
  spdlog::warn("record {}: {} records not delivered so far ({}); client errors: {} ({}); see "
               "shadowtap_record_kafka_*",
               options().path, undelivered, undelivered ? reasons(kstats_.undelivered) : "none", errors,
               errors ? reasons(kstats_.errors) : "none");
  loggedUndelivered_ = undelivered;
  loggedErrors_ = errors;
}

void KafkaRecordWriter::finish(uint64_t now) {
  // The drain time counts from close(), and the purge gets a tenth of it
  // (at most 200 ms) so the whole stays within it.
  const uint64_t drainNs = uint64_t{options().kafka.drainTimeoutMs} * 1'000'000;
  const uint64_t deadline = closeRequestedNs() + drainNs;
  const uint64_t purgeNs = std::min<uint64_t>(drainNs / 10, 200'000'000);
  auto msLeft = [](uint64_t until) {
    const uint64_t t = base::monotonicNs();
    return t >= until ? 0 : static_cast<int>((until - t + 999'999) / 1'000'000);
  };
  rd_kafka_flush(rk_, msLeft(deadline - purgeNs));
  if (kstats_.producerQueueMessages.load(std::memory_order_relaxed) > 0) {
    rd_kafka_purge(rk_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    while (kstats_.producerQueueMessages.load(std::memory_order_relaxed) > 0 && msLeft(deadline) > 0) {
      rd_kafka_poll(rk_, std::min(msLeft(deadline), 10));
    }
  }
  if (const int64_t left = kstats_.producerQueueMessages.load(std::memory_order_relaxed); left > 0) {
    kstats_.undelivered.add(kUnreportedAtExit, static_cast<uint64_t>(left));
    mutableStats().writeErrors.fetch_add(static_cast<uint64_t>(left), std::memory_order_relaxed);
  }
  kstats_.producerQueueMessages.store(0, std::memory_order_relaxed);
  kstats_.producerQueueBytes.store(0, std::memory_order_relaxed);
  destroyed_ = true;
  lastLogNs_ = 0;
  logProblems(now == 0 ? 1 : now);
  rd_kafka_topic_destroy(topic_);
  topic_ = nullptr;
  rd_kafka_destroy(rk_);
  rk_ = nullptr;
}

void KafkaRecordWriter::exportStats(base::StatsSink& out) const {
  RecordWriter::exportStats(out);
  // The usual reasons are always there (as 0), so dashboards find the family.
  auto family = [&out](const char* name, const char* help, const ErrorCounts& counts,
                       std::initializer_list<int> always) {
    std::map<std::string, uint64_t> samples = counts.snapshot();
    for (int err : always) {
      samples.try_emplace(ErrorCounts::reasonName(err), 0);
    }
    for (const auto& [reason, n] : samples) {
      out.counter(name, help, static_cast<double>(n), {{"reason", reason}});
    }
  };
  family("shadowtap_record_kafka_undelivered_total",
         "Records not delivered to Kafka, by librdkafka error: queue_full (the producer's bounded queue is full: "
         "brokers down or slow), msg_timed_out, purge_queue/purge_inflight (still unsent when the drain time ran "
         "out), fatal, ...",
         kstats_.undelivered,
         {RD_KAFKA_RESP_ERR__QUEUE_FULL, RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, RD_KAFKA_RESP_ERR__PURGE_QUEUE,
          RD_KAFKA_RESP_ERR__PURGE_INFLIGHT});
  family("shadowtap_record_kafka_errors_total",
         "Errors of the Kafka client by librdkafka error (all_brokers_down, transport, authentication, ...).",
         kstats_.errors, {RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN, RD_KAFKA_RESP_ERR__TRANSPORT});
  out.gauge("shadowtap_record_kafka_producer_queue_messages",
            "Records handed to the Kafka producer whose delivery is not yet reported.",
            static_cast<double>(base::load(kstats_.producerQueueMessages)));
  out.gauge("shadowtap_record_kafka_producer_queue_bytes",
            "Bytes of the records handed to the Kafka producer whose delivery is not yet reported.",
            static_cast<double>(base::load(kstats_.producerQueueBytes)));
}

}  // namespace shadowtap::record
