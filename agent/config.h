#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace shadowtap {

// Everything the command line decides. Only main and config know the CLI;
// the pipeline receives this struct.
struct Config {
  std::vector<std::string> interfaces;
  uint16_t port = 0;
  std::string mirror;              // host:port of the mirror target
  double mirrorPercentage = 100.0; // share of connections mirrored, 0-100
  std::string shadowSuffix = "-shadow";
  std::string logLevel = "info";

  // Capture.
  uint32_t tcPriority = 1;
  uint32_t ringBufferMiB = 16;

  // Reassembly and framing limits.
  size_t maxFlows = 65536;
  size_t maxFlowBufferMiB = 4;
  size_t maxTotalBufferMiB = 256;
  uint32_t idleTimeoutSec = 60;
  uint32_t gapTimeoutMs = 1000;
  size_t maxRequestMiB = 8;

  // Replay.
  size_t mirrorConnections = 16;
  size_t mirrorQueue = 4096;
  size_t mirrorQueueMiB = 64;
  uint32_t connectTimeoutMs = 1000;
  uint32_t responseTimeoutMs = 5000;
  uint32_t drainTimeoutMs = 2000;

  uint32_t summaryIntervalSec = 10;

  // Basis points (1 = 0.01 %) of the percentage, as the kernel compares them.
  uint32_t sampleBasisPoints() const;
};

// Parses argv. Returns -1 when the program should go on, otherwise the exit code
// to end with (0 after --help/--version, non-zero after an error, which has then
// been printed as one line saying what is wrong).
int parseConfig(int argc, char** argv, Config& out);

}  // namespace shadowtap
