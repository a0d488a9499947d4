// --record kafka://... and the --record-kafka-* settings, before librdkafka.
#include "record/kafka_options.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <map>

#include "record/record_options.h"

namespace shadowtap::record {
namespace {

TEST(KafkaTarget, BrokersAndTopic) {
  KafkaOptions k;
  EXPECT_EQ(parseKafkaTarget("kafka://b1:9092, b2:9093,[2001:db8::1]:9094,b4/traffic.v1_x-y", k), "");
  EXPECT_EQ(k.brokers, (std::vector<std::string>{"b1:9092", "b2:9093", "[2001:db8::1]:9094", "b4"}));
  EXPECT_EQ(k.topic, "traffic.v1_x-y");
  EXPECT_TRUE(isKafkaTarget("kafka://x/y"));
  EXPECT_FALSE(isKafkaTarget("/tmp/kafka://x"));
}

TEST(KafkaTarget, OneLineSayingWhatIsWrong) {
  const std::map<std::string, std::string> bad = {
      {"kafka://b1:9092", "no topic"},
      {"kafka://b1:9092/", "is not a Kafka topic name"},
      {"kafka://b1:9092/a b", "is not a Kafka topic name"},
      {"kafka://b1:9092/a/b", "is not a Kafka topic name"},
      {"kafka://b1:9092/..", "is not a Kafka topic name"},
      {"kafka://b1:9092/" + std::string(250, 't'), "is not a Kafka topic name"},
      {"kafka:///t", "empty broker"},
      {"kafka://b1,,b2/t", "empty broker"},
      {"kafka://b1:0/t", "the port must be 1-65535"},
      {"kafka://b1:99999/t", "the port must be 1-65535"},
      {"kafka://b1:x/t", "is not HOST:PORT"},
      {"kafka://:9092/t", "is not HOST:PORT"},
      {"kafka://2001:db8::1:9092/t", "[ADDR]:PORT"},
      {"kafka://[2001:db8::1/t", "[ADDR]:PORT"},
      {"kafka://user@b1:9092/t", "is not HOST:PORT"},
  };
  for (const auto& [url, why] : bad) {
    KafkaOptions k;
    const std::string e = parseKafkaTarget(url, k);
    EXPECT_NE(e.find(why), std::string::npos) << url << " -> " << e;
    EXPECT_EQ(e.rfind("--record " + url + ": ", 0), 0u) << e;
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
    EXPECT_TRUE(k.brokers.empty() && k.topic.empty()) << url;
  }
}

TEST(KafkaTarget, FormatAndChecks) {
  EXPECT_EQ(formatFromPath("kafka://b:9092/t"), RecordFormat::kKafka);
  EXPECT_EQ(formatName(RecordFormat::kKafka), "kafka");
  RecordOptions o;
  o.path = "kafka://b:9092/t";
  o.format = RecordFormat::kKafka;
  EXPECT_EQ(checkRecordOptions(o), "");  // no directory to check, no broker contacted
  o.path = "kafka://b:9092";
  EXPECT_NE(checkRecordOptions(o).find("no topic"), std::string::npos);
  o.path = "kafka://b:9092/t";
  o.format = RecordFormat::kJsonl;
  EXPECT_NE(checkRecordOptions(o).find("does not match"), std::string::npos);
}

TEST(KafkaProperty, KeyValueAndRefusals) {
  KafkaOptions k;
  EXPECT_EQ(parseKafkaProperty("security.protocol=SASL_SSL", k), "");
  EXPECT_EQ(parseKafkaProperty(" sasl.password = a=b ", k), "");  // the value is kept as given
  EXPECT_EQ(k.properties, (std::vector<std::pair<std::string, std::string>>{{"security.protocol", "SASL_SSL"},
                                                                            {"sasl.password", " a=b "}}));
  EXPECT_NE(parseKafkaProperty("linger.ms", k).find("KEY=VALUE"), std::string::npos);
  EXPECT_NE(parseKafkaProperty("=1", k).find("KEY=VALUE"), std::string::npos);
  EXPECT_NE(parseKafkaProperty("bootstrap.servers=x:1", k).find("kafka://"), std::string::npos);
  EXPECT_NE(parseKafkaProperty("metadata.broker.list=x:1", k).find("kafka://"), std::string::npos);
  EXPECT_EQ(k.properties.size(), 2u);
}

std::map<std::string, std::string> asMap(const std::vector<KafkaProperty>& props) {
  std::map<std::string, std::string> m;
  for (const auto& p : props) {
    m[p.key] = p.value;  // later ones win, as with rd_kafka_conf_set
  }
  return m;
}

TEST(KafkaProducerConfig, BoundedOrderedDefaultsThenTheUsersProperties) {
  KafkaOptions k;
  k.brokers = {"b1:9092", "b2:9092"};
  k.topic = "t";
  auto m = asMap(kafkaProducerConfig(k));
  EXPECT_EQ(m["bootstrap.servers"], "b1:9092,b2:9092");
  EXPECT_EQ(m["client.id"], "shadowtap");
  EXPECT_EQ(m["acks"], "all");
  EXPECT_EQ(m["compression.codec"], "lz4");
  EXPECT_EQ(m["enable.idempotence"], "true");
  EXPECT_EQ(m["partitioner"], "murmur2_random");
  EXPECT_EQ(m["queue.buffering.max.messages"], "10000");
  EXPECT_EQ(m["queue.buffering.max.kbytes"], "32768");
  EXPECT_EQ(m["message.timeout.ms"], "30000");
  EXPECT_EQ(m.count("max.in.flight.requests.per.connection"), 0u);

  k.acks = "1";
  k.compression = "zstd";
  k.clientId = "node-7";
  k.properties = {{"queue.buffering.max.kbytes", "1024"}, {"security.protocol", "SSL"}};
  const auto props = kafkaProducerConfig(k);
  m = asMap(props);
  EXPECT_EQ(m["acks"], "1");
  EXPECT_EQ(m["enable.idempotence"], "false");
  EXPECT_EQ(m["max.in.flight.requests.per.connection"], "1");  // order without idempotence
  EXPECT_EQ(m["compression.codec"], "zstd");
  EXPECT_EQ(m["client.id"], "node-7");
  EXPECT_EQ(m["queue.buffering.max.kbytes"], "1024");
  EXPECT_EQ(m["security.protocol"], "SSL");
  EXPECT_EQ(props.back().source, "--record-kafka-opt security.protocol");  // never the value: it may be a secret
}

TEST(KafkaNodeName, FromEnvironmentElseHostName) {
  const char* old = getenv("NODE_NAME");
  const std::string saved = old ? old : "";
  setenv("NODE_NAME", "worker-3", 1);
  EXPECT_EQ(defaultNodeName(), "worker-3");
  setenv("NODE_NAME", "", 1);
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  EXPECT_EQ(defaultNodeName(), host);
  if (old) {
    setenv("NODE_NAME", saved.c_str(), 1);
  } else {
    unsetenv("NODE_NAME");
  }
}

}  // namespace
}  // namespace shadowtap::record
