#pragma once
// librdkafka's mock Kafka cluster (a real protocol peer on 127.0.0.1 ports)
// and a plain librdkafka consumer that reads a topic back, for the Kafka
// recorder's tests and the e2e helper (kafka_mock_cluster.cc).

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace shadowtap::record::testing {

// `brokers` mock brokers (ids 1..brokers) serving `topic` with `partitions`
// partitions, replicated on every broker, leaders spread over them.
class MockCluster {
 public:
  MockCluster(int brokers, const std::string& topic, int partitions) : brokers_(brokers) {
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err));
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (rk_ == nullptr) {
      rd_kafka_conf_destroy(conf);
      throw std::runtime_error(err);
    }
    mc_ = rd_kafka_mock_cluster_new(rk_, brokers);
    if (mc_ == nullptr) {
      throw std::runtime_error("rd_kafka_mock_cluster_new failed");
    }
    if (rd_kafka_mock_topic_create(mc_, topic.c_str(), partitions, brokers) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      throw std::runtime_error("rd_kafka_mock_topic_create failed");
    }
    for (int p = 0; p < partitions; ++p) {
      rd_kafka_mock_partition_set_leader(mc_, topic.c_str(), p, 1 + p % brokers);
    }
  }
  ~MockCluster() {
    rd_kafka_mock_cluster_destroy(mc_);
    rd_kafka_destroy(rk_);
  }
  MockCluster(const MockCluster&) = delete;
  MockCluster& operator=(const MockCluster&) = delete;

  std::string bootstraps() const { return rd_kafka_mock_cluster_bootstraps(mc_); }
  // Every broker drops its connections and refuses new ones (or accepts again).
  void setAllDown(bool down) {
    for (int id = 1; id <= brokers_; ++id) {
      if (down) {
        rd_kafka_mock_broker_set_down(mc_, id);
      } else {
        rd_kafka_mock_broker_set_up(mc_, id);
      }
    }
  }
  rd_kafka_mock_cluster_t* get() { return mc_; }

 private:
  int brokers_;
  rd_kafka_t* rk_ = nullptr;
  rd_kafka_mock_cluster_t* mc_ = nullptr;
};

struct ConsumedMessage {
  int32_t partition = 0;
  int64_t offset = 0;
  int64_t timestampMs = 0;
  std::string key;
  std::string value;
  std::vector<std::pair<std::string, std::string>> headers;

  std::string header(const std::string& name) const {
    for (const auto& [n, v] : headers) {
      if (n == name) {
        return v;
      }
    }
    return "<none>";
  }
};

// Reads `topic` (partitions 0..partitions-1) from the beginning until `want`
// messages came and then nothing more for `quiet`, or `timeout` passed.
// Messages in the order read (per partition: offset order).
inline std::vector<ConsumedMessage> consumeAll(const std::string& bootstraps, const std::string& topic, int partitions,
                                               size_t want, std::chrono::milliseconds timeout,
                                               std::chrono::milliseconds quiet = std::chrono::milliseconds(300)) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps.c_str(), err, sizeof(err));
  rd_kafka_conf_set(conf, "group.id", "shadowtap-test", err, sizeof(err));
  rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof(err));
  rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err));
  rd_kafka_t* c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
  if (c == nullptr) {
    rd_kafka_conf_destroy(conf);
    throw std::runtime_error(err);
  }
  rd_kafka_topic_partition_list_t* parts = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; ++p) {
    rd_kafka_topic_partition_list_add(parts, topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  }
  rd_kafka_assign(c, parts);
  rd_kafka_topic_partition_list_destroy(parts);
  std::vector<ConsumedMessage> out;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto lastNew = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() < deadline) {
    if (out.size() >= want && std::chrono::steady_clock::now() - lastNew >= quiet) {
      break;
    }
    rd_kafka_message_t* m = rd_kafka_consumer_poll(c, 50);
    if (m == nullptr) {
      continue;
    }
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      ConsumedMessage cm;
      cm.partition = m->partition;
      cm.offset = m->offset;
      cm.timestampMs = rd_kafka_message_timestamp(m, nullptr);
      cm.key.assign(static_cast<const char*>(m->key), m->key_len);
      cm.value.assign(static_cast<const char*>(m->payload), m->len);
      rd_kafka_headers_t* hdrs = nullptr;
      if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char* name;
        const void* value;
        size_t size;
        for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
             ++i) {
          cm.headers.emplace_back(name, std::string(static_cast<const char*>(value), size));
        }
      }
      out.push_back(std::move(cm));
      lastNew = std::chrono::steady_clock::now();
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(c);
  rd_kafka_destroy(c);
  return out;
}

}  // namespace shadowtap::record::testing
