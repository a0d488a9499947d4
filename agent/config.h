#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "rules/rule.h"

namespace shadowtap {

// Everything the command line decides. Only main and config know the CLI;
// the pipeline receives this struct.
struct Config {
  std::vector<std::string> interfaces;
  // Shorthand for one rule (--port/--mirror/--mirror-percentage/--shadow-suffix).
  uint16_t port = 0;
  std::string mirror;              // host:port of the mirror target
  double mirrorPercentage = 100.0; // share of connections mirrored, 0-100
  std::string shadowSuffix = "-shadow";  // also the default suffix of every --rule
  std::vector<std::string> ruleTexts;    // --rule, as given
  // Every rule, the shorthand's first; ruleId = index + 1. Filled by parseConfig.
  std::vector<rules::Rule> rules;
  std::string configFile;
  bool dryRun = false;  // print requests as JSON lines instead of sending them
  std::string logLevel = "info";
  std::string logFormat = "text";  // text | json (one object per line)
  std::string metricsAddress = "127.0.0.1:9464";  // /metrics, /healthz, /readyz; "off" disables

  // Capture.
  std::string attach = "auto";  // auto | tc | tcx | xdp
  std::string mirrorIo = "auto";  // auto | uring | epoll: the HTTP/1 mirror pools' socket I/O
  bool adaptiveWakeups = true;
  bool tls = false;        // --tls: read OpenSSL plaintext through uprobes
  std::string tlsLibrary;  // --tls-library; empty: the loader's libssl.so.3
  uint32_t tcPriority = 1;
  // tc mode: locks that tell another running instance's filters from leftovers.
  std::string stateDir = "/run/shadowtap";
  uint32_t ringBufferMiB = 16;
  // Worker threads, each with its own ring buffer, flows and mirror
  // connections (--workers N|auto): 0 is auto (a quarter of the usable
  // cores, 1 to 4); workersText is the flag as given.
  uint32_t workers = 0;
  std::string workersText = "auto";

  // Reassembly and framing limits.
  size_t maxFlows = 65536;
  size_t maxFlowBufferMiB = 4;
  size_t maxTotalBufferMiB = 256;
  uint32_t idleTimeoutSec = 60;
  uint32_t gapTimeoutMs = 1000;
  size_t maxRequestMiB = 8;
  size_t streamWindowKiB = 4096;  // 0: requests over maxRequestMiB are skipped, not streamed
  size_t maxHeaderKiB = 64;
  size_t maxRequestLineKiB = 16;
  size_t maxResyncScanKiB = 64;
  size_t maxFlowBufferSegments = 4096;
  uint32_t closedLingerMs = 5000;

  // Replay.
  size_t mirrorConnections = 16;
  size_t mirrorMaxConnections = 1024;
  size_t mirrorQueue = 4096;
  size_t mirrorQueueMiB = 64;
  uint32_t connectTimeoutMs = 1000;
  uint32_t responseTimeoutMs = 5000;
  uint32_t drainTimeoutMs = 2000;
  uint32_t idleTimeoutMs = 60000;       // unused keep-alive connection to the mirror
  uint32_t resolveIntervalSec = 30;     // re-resolution of mirror names; 0: only at start
  uint32_t mirrorMaxRps = 0;            // default max-rps of every rule; 0: unlimited
  std::string mirrorDropPolicy = "newest";

  uint32_t summaryIntervalSec = 10;
  // Every counter as one JSON object (as /stats serves it), rewritten at every
  // summary and at exit; empty: none.
  std::string statsFile;

  // Response comparison (rules with compare=true).
  std::string compareOutput;                   // JSON lines of differing pairs, for `shadowtap report`
  std::vector<std::string> compareIgnoreHeaders;  // in addition to Date, Server, ...
  std::vector<std::string> compareIgnorePaths;    // JSON paths such as $.timestamp
  size_t compareMaxMiB = 256;                     // responses held for comparison, all rules together

  // Recording (a side output; works with or without a live mirror).
  std::string recordPath;               // .har, .jsonl, .pcap or kafka://...; empty: off
  std::string recordRedact = "default";  // none | default | header:NAME,query:NAME,...
  bool recordBodies = true;
  bool recordPcapUnredacted = false;
  uint64_t recordMaxFileMiB = 64;
  uint64_t recordMaxTotalMiB = 1024;
  uint32_t recordRotateSeconds = 0;
  // --record kafka://BROKER[,BROKER...]/TOPIC.
  std::string recordKafkaAcks = "all";          // all | 1 | 0
  std::string recordKafkaCompression = "lz4";   // none | gzip | snappy | lz4 | zstd
  std::string recordKafkaClientId = "shadowtap";
  std::vector<std::string> recordKafkaOpts;     // librdkafka KEY=VALUE, as given
};

// Parses argv. Returns -1 when the program should go on, otherwise the exit code
// to end with (0 after --help/--version, non-zero after an error, which has then
// been printed as one line saying what is wrong).
int parseConfig(int argc, char** argv, Config& out);

// The same, for a reload: never prints; a failure is in *error.
bool reparseConfig(int argc, char** argv, Config& out, std::string* error);

}  // namespace shadowtap
