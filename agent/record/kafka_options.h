#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace shadowtap::record {

// What `--record kafka://BROKER[,BROKER...]/TOPIC` and the --record-kafka-*
// flags ask of the Kafka recorder (see KafkaRecordWriter).
struct KafkaOptions {
  std::vector<std::string> brokers;  // "host:port" (or "host": librdkafka's default port 9092)
  std::string topic;
  std::string acks = "all";           // all | 1 | 0
  std::string compression = "lz4";    // none | gzip | snappy | lz4 | zstd
  std::string clientId = "shadowtap";
  // --record-kafka-opt KEY=VALUE, in order; applied after ours, so they win.
  std::vector<std::pair<std::string, std::string>> properties;
  // The "node" header; empty: $NODE_NAME, else the host name (defaultNodeName).
  std::string nodeName;
  // close(): how long queued messages may take to be delivered before the
  // rest is purged and counted.
  uint32_t drainTimeoutMs = 2000;
};

inline constexpr std::string_view kKafkaScheme = "kafka://";

// True for a --record value naming Kafka rather than a file.
bool isKafkaTarget(std::string_view path);

// Parses "kafka://b1:9092,b2:9092/topic" into out.brokers and out.topic.
// Empty when fine, else one line saying what is wrong.
std::string parseKafkaTarget(std::string_view url, KafkaOptions& out);

// Parses one --record-kafka-opt "key=value" into out.properties. Refuses the
// keys the URL owns (bootstrap.servers, metadata.broker.list). Empty when
// fine, else one line.
std::string parseKafkaProperty(std::string_view keyValue, KafkaOptions& out);

// One librdkafka configuration property and the flag it came from (for the
// one-line error when librdkafka refuses it).
struct KafkaProperty {
  std::string key;
  std::string value;
  std::string source;
};

// The producer's configuration: bootstrap servers, client id, acks,
// compression, the bounds that keep a dead broker from costing unbounded
// memory (queue.buffering.max.messages/kbytes, message.timeout.ms), ordering
// per connection (idempotence with acks=all, else one request in flight), a
// Java-compatible key partitioner; then every --record-kafka-opt in order.
std::vector<KafkaProperty> kafkaProducerConfig(const KafkaOptions& opts);

// $NODE_NAME when set and not empty (the DaemonSet sets it from
// spec.nodeName), else the host name.
std::string defaultNodeName();

}  // namespace shadowtap::record
