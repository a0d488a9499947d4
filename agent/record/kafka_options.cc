#include "record/kafka_options.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include "base/strings.h"

namespace shadowtap::record {
namespace {

bool isPort(std::string_view s) {
  if (s.empty() || s.size() > 5 || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return false;
  }
  const int port = std::atoi(std::string(s).c_str());
  return port >= 1 && port <= 65535;
}

// "" when `b` is host, host:port or [v6]:port; else why not.
std::string checkBroker(std::string_view b) {
  if (b.find_first_of(" \t/?#@") != std::string_view::npos) {
    return "'" + std::string(b) + "' is not HOST:PORT";
  }
  if (b.front() == '[') {
    const size_t close = b.find(']');
    if (close == std::string_view::npos || close == 1) {
      return "'" + std::string(b) + "': an IPv6 address is written [ADDR]:PORT";
    }
    const std::string_view rest = b.substr(close + 1);
    if (!rest.empty() && (rest.front() != ':' || !isPort(rest.substr(1)))) {
      return "'" + std::string(b) + "': the port must be 1-65535";
    }
    return "";
  }
  const size_t colon = b.find(':');
  if (colon == std::string_view::npos) {
    return "";
  }
  if (b.find(':', colon + 1) != std::string_view::npos) {
    return "'" + std::string(b) + "': an IPv6 address is written [ADDR]:PORT";
  }
  if (colon == 0 || !isPort(b.substr(colon + 1))) {
    return "'" + std::string(b) + "' is not HOST:PORT (the port must be 1-65535)";
  }
  return "";
}

// Kafka's own rule for topic names.
bool validTopic(std::string_view t) {
  return !t.empty() && t.size() <= 249 && t != "." && t != ".." &&
         std::all_of(t.begin(), t.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                  c == '_' || c == '-';
         });
}

}  // namespace

bool isKafkaTarget(std::string_view path) { return path.starts_with(kKafkaScheme); }

std::string parseKafkaTarget(std::string_view url, KafkaOptions& out) {
  const std::string what = "--record " + std::string(url) + ": ";
  if (!isKafkaTarget(url)) {
    return what + "a Kafka target starts with kafka://";
  }
  std::string_view rest = url.substr(kKafkaScheme.size());
  const size_t slash = rest.find('/');
  if (slash == std::string_view::npos) {
    return what + "no topic; write kafka://BROKER[,BROKER...]/TOPIC";
  }
  const std::string_view brokers = rest.substr(0, slash);
  const std::string_view topic = rest.substr(slash + 1);
  if (!validTopic(topic)) {
    return what + "'" + std::string(topic) +
           "' is not a Kafka topic name (1-249 characters of a-z, A-Z, 0-9, '.', '_', '-')";
  }
  std::vector<std::string> list;
  std::string_view b = brokers;
  while (true) {
    const size_t comma = b.find(',');
    const std::string_view item = base::trimOws(b.substr(0, comma));
    if (item.empty()) {
      return what + "empty broker; write kafka://BROKER[,BROKER...]/TOPIC";
    }
    if (std::string why = checkBroker(item); !why.empty()) {
      return what + "broker " + why;
    }
    list.emplace_back(item);
    if (comma == std::string_view::npos) {
      break;
    }
    b = b.substr(comma + 1);
  }
  out.brokers = std::move(list);
  out.topic = std::string(topic);
  return "";
}

std::string parseKafkaProperty(std::string_view keyValue, KafkaOptions& out) {
  const size_t eq = keyValue.find('=');
  const std::string_view key = base::trimOws(keyValue.substr(0, eq));
  if (eq == std::string_view::npos || key.empty()) {
    return "--record-kafka-opt " + std::string(keyValue) + ": write KEY=VALUE (a librdkafka property)";
  }
  if (key == "bootstrap.servers" || key == "metadata.broker.list") {
    return "--record-kafka-opt " + std::string(key) + ": the brokers go in the URL: --record kafka://BROKER[,BROKER...]/TOPIC";
  }
  out.properties.emplace_back(std::string(key), std::string(keyValue.substr(eq + 1)));
  return "";
}

std::vector<KafkaProperty> kafkaProducerConfig(const KafkaOptions& o) {
  std::string servers;
  for (const std::string& b : o.brokers) {
    servers += (servers.empty() ? "" : ",") + b;
  }
  const bool all = o.acks == "all" || o.acks == "-1";
  std::vector<KafkaProperty> c = {
      {"bootstrap.servers", servers, "--record kafka://" + servers + "/" + o.topic},
      {"client.id", o.clientId, "--record-kafka-client-id"},
      {"acks", o.acks, "--record-kafka-acks"},
      {"compression.codec", o.compression, "--record-kafka-compression"},
      // Retries never reorder or duplicate a connection's requests: the
      // idempotent producer where acks=all allows it, else one request in flight.
      {"enable.idempotence", all ? "true" : "false", "--record-kafka-acks"},
      // One connection's requests always go to one partition, the one a Java
      // producer would pick for the same key.
      {"partitioner", "murmur2_random", "the Kafka recorder's defaults"},
      // librdkafka's own queue is bounded well below its 1 GiB default: with
      // the brokers down, produce fails fast (counted) instead of buffering.
      {"queue.buffering.max.messages", "10000", "the Kafka recorder's defaults"},
      {"queue.buffering.max.kbytes", "32768", "the Kafka recorder's defaults"},
      {"message.timeout.ms", "30000", "the Kafka recorder's defaults"},
      {"linger.ms", "20", "the Kafka recorder's defaults"},
      {"log.connection.close", "false", "the Kafka recorder's defaults"},
  };
  if (!all) {
    c.push_back({"max.in.flight.requests.per.connection", "1", "--record-kafka-acks"});
  }
  for (const auto& [k, v] : o.properties) {
    c.push_back({k, v, "--record-kafka-opt " + k});  // the value may be a secret
  }
  return c;
}

std::string defaultNodeName() {
  if (const char* env = std::getenv("NODE_NAME"); env != nullptr && *env != '\0') {
    return env;
  }
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) == 0 && host[0] != '\0') {
    return host;
  }
  return "unknown";
}

}  // namespace shadowtap::record
