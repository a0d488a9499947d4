// The Kafka recorder against librdkafka's mock cluster: three brokers on real
// 127.0.0.1 sockets, read back with a plain librdkafka consumer.
#include "record/kafka_record_writer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "kafka_mock.h"
#include "record/codec.h"
#include "record_test_util.h"

namespace shadowtap::record {
namespace {

using testing::ConsumedMessage;
using testing::consumeAll;
using testing::kMay1;
using testing::makeRequest;
using testing::MockCluster;
using testing::slurp;
using testing::TempDir;
using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr int kBrokers = 3;
constexpr int kPartitions = 6;

RecordOptions kafkaOptions(const MockCluster& mc, const std::string& topic) {
  RecordOptions o;
  o.path = "kafka://" + mc.bootstraps() + "/" + topic;
  o.format = RecordFormat::kKafka;
  o.realtimeOffsetNs = kMay1;
  o.kafka.nodeName = "node-a";
  o.kafka.drainTimeoutMs = 10000;
  return o;
}

std::unique_ptr<RecordWriter> makeKafka(RecordOptions o) {
  std::string error;
  auto w = makeRecordWriter(std::move(o), &error);
  EXPECT_NE(w, nullptr) << error;
  return w;
}

const KafkaStats& kstats(const RecordWriter& w) { return dynamic_cast<const KafkaRecordWriter&>(w).kafkaStats(); }

// Polls `cond` for up to `timeout`.
template <typename Cond>
bool eventually(Cond cond, milliseconds timeout = milliseconds(10000)) {
  const auto deadline = Clock::now() + timeout;
  while (!cond()) {
    if (Clock::now() >= deadline) {
      return false;
    }
    std::this_thread::sleep_for(milliseconds(10));
  }
  return true;
}

void expectEveryOutcomeCounted(const RecordWriter& w) {
  const RecordStats& s = w.stats();
  EXPECT_EQ(s.offered, s.written + s.dropped + s.malformed + s.writeErrors);
  EXPECT_EQ(s.writeErrors, kstats(w).undelivered.total());
}

// Connection `conn`'s request number `n`: with credentials, so redaction shows.
model::Request http1Request(int conn, int n) {
  const std::string body = "body " + std::to_string(n);
  model::Request r = makeRequest("POST /c" + std::to_string(conn) + "/r/" + std::to_string(n) +
                                     "?token=t" + std::to_string(n) + " HTTP/1.1\r\nHost: httpbin:8000\r\n"
                                     "Authorization: Bearer secret-" + std::to_string(n) +
                                     "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body,
                                 1'000'000'000ULL + static_cast<uint64_t>(n) * 1'000'000, static_cast<uint16_t>(40000 + conn));
  r.ruleId = 1 + static_cast<uint32_t>(conn % 2);
  return r;
}

model::Request http2Request(int n) {
  model::Request r;
  r.flow.saddr = {198, 18, 0, 1};
  r.flow.daddr = {198, 18, 0, 2};
  r.flow.sport = 50000;
  r.flow.dport = 50051;
  r.ruleId = 3;
  r.streamId = 1 + 2 * n;
  r.tsNs = 2'000'000'000ULL + static_cast<uint64_t>(n) * 1'000'000;
  r.headers = {{":method", "POST", false},
               {":scheme", "http", false},
               {":authority", "svc:50051", false},
               {":path", "/h2/r/" + std::to_string(n), false},
               {"authorization", "Bearer secret-h2-" + std::to_string(n), true},
               {"content-type", "application/grpc", false}};
  r.body = std::string("\x00\x00\x00\x00\x02\xff", 6) + static_cast<char>(n);
  r.finishHttp2();
  return r;
}

// The request number in a recorded target ("/c3/r/17?..." or "/h2/r/4").
int requestNumber(const Json& j) {
  const std::string t = j["target"];
  const size_t r = t.find("/r/");
  return std::stoi(t.substr(r + 3));
}

TEST(KafkaRecordWriter, EveryRequestArrivesOnceAsItsJsonLineKeyedByConnectionInOrder) {
  MockCluster mc(kBrokers, "traffic", kPartitions);
  RecordOptions o = kafkaOptions(mc, "traffic");
  o.redactQuery = {"token"};
  auto w = makeKafka(o);
  // The same requests to a JSON lines file: each message must be one of its lines.
  TempDir dir;
  RecordOptions fo = testing::optionsFor(dir, "same.jsonl");
  fo.redactQuery = {"token"};
  auto file = testing::make(fo);
  ASSERT_TRUE(w && file);

  constexpr int kConns = 12;
  constexpr int kPerConn = 20;
  constexpr int kH2 = 15;
  for (int n = 0; n < kPerConn; ++n) {
    for (int c = 0; c < kConns; ++c) {
      model::Request r = http1Request(c, n);
      file->record(r);
      w->onRequest(std::move(r));
    }
    if (n < kH2) {
      model::Request r = http2Request(n);
      file->record(r);
      w->onRequest(std::move(r));
    }
  }
  const size_t total = kConns * kPerConn + kH2;
  w->close();  // flushes: everything is delivered before it returns
  file->close();

  const RecordStats& s = w->stats();
  EXPECT_EQ(s.offered, total);
  EXPECT_EQ(s.written, total);
  EXPECT_EQ(s.dropped + s.malformed + s.writeErrors, 0u);
  EXPECT_EQ(s.redactedValues, kConns * kPerConn * 2 + kH2);  // Authorization and token; h2 Authorization
  EXPECT_EQ(kstats(*w).producerQueueMessages, 0);
  expectEveryOutcomeCounted(*w);

  const std::vector<ConsumedMessage> got = consumeAll(mc.bootstraps(), "traffic", kPartitions, total, milliseconds(20000));
  ASSERT_EQ(got.size(), total);

  std::multiset<std::string> lines;
  const std::string text = slurp(dir.files("same", ".jsonl").at(0));
  for (size_t pos = 0; pos < text.size();) {
    const size_t nl = text.find('\n', pos);
    lines.insert(text.substr(pos, nl - pos));
    pos = nl + 1;
  }
  std::multiset<std::string> values;
  uint64_t valueBytes = 0;
  std::map<std::string, std::vector<std::pair<int32_t, int>>> perKey;  // key -> (partition, request number)
  std::set<int32_t> partitions;
  for (const ConsumedMessage& m : got) {
    values.insert(m.value);
    valueBytes += m.value.size();
    const Json j = Json::parse(m.value);
    EXPECT_EQ(m.key, j["flow"]);
    EXPECT_EQ(m.header("node"), "node-a");
    EXPECT_EQ(m.header("rule"), std::to_string(j["rule"].get<int>()));
    EXPECT_EQ(m.value.find("secret-"), std::string::npos) << m.value;
    EXPECT_NE(m.value.find("[REDACTED]"), std::string::npos) << m.value;
    const int64_t unixMs = *parseRfc3339(j["time"].get<std::string>()) / 1'000'000;
    EXPECT_EQ(m.timestampMs, unixMs);
    perKey[m.key].emplace_back(m.partition, requestNumber(j));
    partitions.insert(m.partition);
  }
  EXPECT_EQ(values, lines) << "each message is one line of the .jsonl recording of the same requests, once";
  EXPECT_EQ(s.bytesWritten, valueBytes);
  EXPECT_EQ(perKey.size(), static_cast<size_t>(kConns + 1));
  for (const auto& [key, seq] : perKey) {
    for (size_t i = 1; i < seq.size(); ++i) {
      EXPECT_EQ(seq[i].first, seq[0].first) << key << ": one connection, one partition";
      EXPECT_EQ(seq[i].second, seq[i - 1].second + 1) << key << ": in the order captured";
    }
  }
  EXPECT_GE(partitions.size(), 3u) << "connections spread over the partitions (and so over the brokers)";
}

TEST(KafkaRecordWriter, BrokersDownFillTheBoundedProducerQueueThenDropAtOnceCounted) {
  MockCluster mc(kBrokers, "down", kPartitions);
  mc.setAllDown(true);
  RecordOptions o = kafkaOptions(mc, "down");
  o.kafka.properties = {{"queue.buffering.max.messages", "5"}, {"message.timeout.ms", "60000"}};
  o.kafka.drainTimeoutMs = 300;
  auto w = makeKafka(o);
  ASSERT_TRUE(w);
  const auto t0 = Clock::now();
  for (int n = 0; n < 40; ++n) {
    w->onRequest(http1Request(n % 4, n));
  }
  // The capture side only copies into the hand-off queue.
  EXPECT_LT(Clock::now() - t0, milliseconds(500));
  const KafkaStats& k = kstats(*w);
  ASSERT_TRUE(eventually([&] { return k.undelivered.total() == 35; })) << k.undelivered.total();
  EXPECT_EQ(k.undelivered.snapshot().at("queue_full"), 35u);
  EXPECT_EQ(k.producerQueueMessages, 5);
  EXPECT_GT(k.producerQueueBytes, 0);
  EXPECT_EQ(w->stats().writeErrors, 35u);
  EXPECT_EQ(w->stats().written, 0u);

  // The metrics the registry renders.
  struct Sink final : base::StatsSink {
    std::map<std::string, double> values;
    void counter(std::string_view name, std::string_view, double v, const base::Labels& l) override { add(name, v, l); }
    void gauge(std::string_view name, std::string_view, double v, const base::Labels& l) override { add(name, v, l); }
    void histogram(std::string_view, std::string_view, std::span<const double>, std::span<const uint64_t>, double,
                   const base::Labels&) override {}
    void add(std::string_view name, double v, const base::Labels& l) {
      std::string key(name);
      for (const auto& [ln, lv] : l) {
        key += "," + ln + "=" + lv;
      }
      values[key] = v;
    }
  } sink;
  w->exportStats(sink);
  EXPECT_EQ(sink.values["shadowtap_record_kafka_undelivered_total,reason=queue_full"], 35);
  EXPECT_EQ(sink.values["shadowtap_record_kafka_undelivered_total,reason=msg_timed_out"], 0);  // always there
  EXPECT_EQ(sink.values["shadowtap_record_kafka_producer_queue_messages"], 5);
  EXPECT_GT(sink.values["shadowtap_record_kafka_producer_queue_bytes"], 0);
  EXPECT_EQ(sink.values["shadowtap_record_items_total,outcome=write_error"], 35);
  EXPECT_EQ(sink.values.count("shadowtap_record_queue_bytes"), 1u);

  // close() gives the 5 queued messages the drain time, then purges and counts them.
  const auto c0 = Clock::now();
  w->close();
  const auto took = Clock::now() - c0;
  EXPECT_GE(took, milliseconds(250));
  EXPECT_LT(took, milliseconds(300 + 1500));
  const auto reasons = k.undelivered.snapshot();
  const uint64_t purged = (reasons.contains("purge_queue") ? reasons.at("purge_queue") : 0) +
                          (reasons.contains("purge_inflight") ? reasons.at("purge_inflight") : 0) +
                          (reasons.contains("unreported_at_exit") ? reasons.at("unreported_at_exit") : 0);
  EXPECT_EQ(purged, 5u);
  EXPECT_EQ(k.producerQueueMessages, 0);
  EXPECT_EQ(k.producerQueueBytes, 0);
  expectEveryOutcomeCounted(*w);
}

TEST(KafkaRecordWriter, DeliveryFailuresCountedByReason) {
  MockCluster mc(kBrokers, "fail", kPartitions);
  mc.setAllDown(true);
  RecordOptions o = kafkaOptions(mc, "fail");
  o.kafka.properties = {{"message.timeout.ms", "300"}, {"message.max.bytes", "2000"}};
  auto w = makeKafka(o);
  ASSERT_TRUE(w);
  for (int n = 0; n < 3; ++n) {
    w->onRequest(http1Request(0, n));
  }
  w->onRequest(makeRequest("POST /big HTTP/1.1\r\nHost: h\r\nContent-Length: 5000\r\n\r\n" + std::string(5000, 'x')));
  const KafkaStats& k = kstats(*w);
  ASSERT_TRUE(eventually([&] { return k.undelivered.total() == 4; })) << k.undelivered.total();
  const auto reasons = k.undelivered.snapshot();
  EXPECT_EQ(reasons.at("msg_timed_out"), 3u);
  EXPECT_EQ(reasons.at("msg_size_too_large"), 1u);
  EXPECT_GE(k.errors.total(), 1u) << "the client reports the brokers it cannot reach";
  w->close();
  EXPECT_EQ(w->stats().written, 0u);
  expectEveryOutcomeCounted(*w);
}

TEST(KafkaRecordWriter, DeliversAgainOnceTheBrokersAreBack) {
  MockCluster mc(kBrokers, "back", kPartitions);
  mc.setAllDown(true);
  auto w = makeKafka(kafkaOptions(mc, "back"));
  ASSERT_TRUE(w);
  for (int n = 0; n < 5; ++n) {
    w->onRequest(http1Request(1, n));
  }
  ASSERT_TRUE(eventually([&] { return kstats(*w).producerQueueMessages == 5; }));
  mc.setAllDown(false);
  for (int n = 5; n < 10; ++n) {
    w->onRequest(http1Request(1, n));
  }
  ASSERT_TRUE(eventually([&] { return w->stats().written == 10; }, milliseconds(20000))) << w->stats().written;
  w->close();
  expectEveryOutcomeCounted(*w);
  const auto got = consumeAll(mc.bootstraps(), "back", kPartitions, 10, milliseconds(20000));
  ASSERT_EQ(got.size(), 10u);
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(requestNumber(Json::parse(got[i].value)), static_cast<int>(i)) << "one connection, in order, once";
  }
}

TEST(KafkaRecordWriter, CloseFlushesWhatLingersWithinTheDrainTime) {
  MockCluster mc(kBrokers, "flush", kPartitions);
  RecordOptions o = kafkaOptions(mc, "flush");
  // Without a flush nothing would leave for 20 s.
  o.kafka.properties = {{"linger.ms", "20000"}, {"message.timeout.ms", "60000"}};
  o.kafka.drainTimeoutMs = 5000;
  auto w = makeKafka(o);
  ASSERT_TRUE(w);
  for (int n = 0; n < 100; ++n) {
    w->onRequest(http1Request(n % 7, n));
  }
  ASSERT_TRUE(eventually([&] { return kstats(*w).producerQueueMessages == 100; }));
  std::this_thread::sleep_for(milliseconds(200));
  EXPECT_EQ(w->stats().written, 0u) << "still lingering";
  const auto c0 = Clock::now();
  w->close();
  EXPECT_LT(Clock::now() - c0, milliseconds(5000));
  EXPECT_EQ(w->stats().written, 100u);
  expectEveryOutcomeCounted(*w);
  EXPECT_EQ(consumeAll(mc.bootstraps(), "flush", kPartitions, 100, milliseconds(20000)).size(), 100u);
}

TEST(KafkaRecordWriter, UnredactedWhenAskedAndNodeNameFromTheEnvironment) {
  MockCluster mc(kBrokers, "plain", kPartitions);
  RecordOptions o = kafkaOptions(mc, "plain");
  ASSERT_EQ(applyRedactSpec("none", o), "");
  o.kafka.nodeName.clear();
  setenv("NODE_NAME", "worker-9", 1);
  auto w = makeKafka(o);
  unsetenv("NODE_NAME");
  ASSERT_TRUE(w);
  w->onRequest(http1Request(0, 0));
  w->close();
  const auto got = consumeAll(mc.bootstraps(), "plain", kPartitions, 1, milliseconds(20000));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_NE(got[0].value.find("Bearer secret-0"), std::string::npos);
  EXPECT_EQ(got[0].header("node"), "worker-9");
  EXPECT_EQ(w->stats().redactedValues, 0u);
}

TEST(KafkaRecordWriter, LibrdkafkaRefusingASettingIsOneLineNamingTheFlag) {
  struct Case {
    std::function<void(KafkaOptions&)> set;
    std::string flag;
  };
  const std::vector<Case> cases = {
      {[](KafkaOptions& k) { k.properties = {{"no.such.property", "1"}}; }, "--record-kafka-opt no.such.property: "},
      {[](KafkaOptions& k) { k.properties = {{"linger.ms", "soon"}}; }, "--record-kafka-opt linger.ms: "},
      {[](KafkaOptions& k) { k.compression = "brotli"; }, "--record-kafka-compression: "},
      {[](KafkaOptions& k) { k.acks = "most"; }, "--record-kafka-acks: "},
  };
  for (const Case& c : cases) {
    RecordOptions o;
    o.path = "kafka://198.18.0.9:9092/t";  // never contacted: refused before
    o.format = RecordFormat::kKafka;
    c.set(o.kafka);
    std::string error;
    EXPECT_EQ(makeRecordWriter(o, &error), nullptr);
    EXPECT_EQ(error.rfind(c.flag, 0), 0u) << error;
    EXPECT_EQ(error.find('\n'), std::string::npos) << error;
  }
  RecordOptions o;
  o.path = "kafka://b1:9092";
  o.format = RecordFormat::kKafka;
  std::string error;
  EXPECT_EQ(makeRecordWriter(o, &error), nullptr);
  EXPECT_NE(error.find("no topic"), std::string::npos) << error;
}

TEST(KafkaErrorCounts, LibrdkafkasNamesLowerCase) {
  EXPECT_EQ(ErrorCounts::reasonName(RD_KAFKA_RESP_ERR__QUEUE_FULL), "queue_full");
  EXPECT_EQ(ErrorCounts::reasonName(RD_KAFKA_RESP_ERR__MSG_TIMED_OUT), "msg_timed_out");
  EXPECT_EQ(ErrorCounts::reasonName(RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED), "topic_authorization_failed");
  ErrorCounts c;
  c.add(RD_KAFKA_RESP_ERR__QUEUE_FULL, 2);
  c.add(RD_KAFKA_RESP_ERR__QUEUE_FULL);
  c.add(RD_KAFKA_RESP_ERR__TRANSPORT);
  EXPECT_EQ(c.total(), 4u);
  EXPECT_EQ(c.snapshot(), (std::map<std::string, uint64_t>{{"queue_full", 3}, {"transport", 1}}));
}

}  // namespace
}  // namespace shadowtap::record
