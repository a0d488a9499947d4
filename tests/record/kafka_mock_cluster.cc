// A librdkafka mock Kafka cluster in a process of its own, for end-to-end
// tests: serves BROKERS brokers on 127.0.0.1 ports of the network namespace it
// runs in, with TOPIC created (PARTITIONS partitions, leaders spread over the
// brokers). Prints "bootstrap HOST:PORT,..." once it listens, then takes
// commands on stdin, one a line, answering each with "ok CMD":
//   down   every broker drops its connections and refuses new ones
//   up     they accept again
//   quit   (or end of input) exit
//
// Usage: kafka_mock_cluster BROKERS TOPIC PARTITIONS
#include <iostream>
#include <string>

#include "kafka_mock.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: kafka_mock_cluster BROKERS TOPIC PARTITIONS\n";
    return 2;
  }
  try {
    shadowtap::record::testing::MockCluster mc(std::stoi(argv[1]), argv[2], std::stoi(argv[3]));
    std::cout << "bootstrap " << mc.bootstraps() << std::endl;
    std::string line;
    while (std::getline(std::cin, line) && line != "quit") {
      if (line == "down" || line == "up") {
        mc.setAllDown(line == "down");
        std::cout << "ok " << line << std::endl;
      } else if (!line.empty()) {
        std::cout << "unknown command " << line << std::endl;
      }
    }
  } catch (const std::exception& e) {
    std::cerr << "kafka_mock_cluster: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
