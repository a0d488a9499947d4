// Config -> stage options (pipeline_options.h): every flag reaches its stage
// in the stage's unit, from a parsed command line as a user writes it.
#include "pipeline_options.h"

#include <gtest/gtest.h>

#include "config_args.h"

#include <string>
#include <vector>

namespace shadowtap {
namespace {

Config parse(std::vector<std::string> args) {
  args.insert(args.begin(), {"-i", "eth0", "--rule", "port=8000,mirror=127.0.0.1:9000"});
  return testing::parseArgs(std::move(args));
}

TEST(PipelineOptions, CaptureOptionsCarryTheFlagsInBytesAndTheCallersRulesWorkersAndSeed) {
  const Config c = parse({"-i", "veth*", "--ring-buffer-mib", "64", "--attach", "tc", "--tc-priority", "7",
                          "--state-dir", "/tmp/st", "--no-adaptive-wakeups", "--tls", "--tls-library", "/usr/lib/x86_64-linux-gnu/libssl.so.3"});
  capture::PortRule r;
  r.port = 8000;
  r.ruleId = 1;
  const capture::CaptureOptions co = captureOptionsOf(c, {r}, 3, 0xabcd);
  EXPECT_EQ(co.interfaces, (std::vector<std::string>{"eth0", "veth*"}));
  EXPECT_EQ(co.ringBufferBytes, 64u << 20);
  EXPECT_EQ(co.attach, capture::AttachMode::kTc);
  EXPECT_EQ(co.tcPriority, 7u);
  EXPECT_EQ(co.stateDir, "/tmp/st");
  EXPECT_FALSE(co.adaptiveWakeups);
  EXPECT_TRUE(co.tls);
  EXPECT_EQ(co.tlsLibrary, "/usr/lib/x86_64-linux-gnu/libssl.so.3");
  EXPECT_EQ(co.workers, 3u);
  EXPECT_EQ(co.hashSeed, 0xabcdu);
  ASSERT_EQ(co.rules.size(), 1u);
  EXPECT_EQ(co.rules[0].port, 8000);
}

TEST(PipelineOptions, TheDefaultsAreTheDocumentedOnes) {
  const Config c = parse({});
  const capture::CaptureOptions co = captureOptionsOf(c, {}, 1, 0);
  EXPECT_EQ(co.ringBufferBytes, 16u << 20);
  EXPECT_EQ(co.attach, capture::AttachMode::kAuto);
  EXPECT_TRUE(co.adaptiveWakeups);
  EXPECT_FALSE(co.tls);
  const http::FramerLimits fl = framerLimitsOf(c);
  EXPECT_EQ(fl.maxRequestBytes, size_t(8) << 20);
  EXPECT_EQ(fl.maxHeaderBytes, size_t(64) << 10);
  EXPECT_EQ(fl.maxRequestLineBytes, size_t(16) << 10);
  EXPECT_EQ(fl.maxResyncScanBytes, size_t(64) << 10);
  const flow::FlowLimits f = flowLimitsOf(c);
  EXPECT_EQ(f.maxFlows, 65536u);
  EXPECT_EQ(f.maxFlowBufferBytes, size_t(4) << 20);
  EXPECT_EQ(f.maxTotalBufferBytes, size_t(256) << 20);
  EXPECT_EQ(f.idleTimeoutNs, 60'000'000'000ULL);
  EXPECT_EQ(f.gapTimeoutNs, 1'000'000'000ULL);
  EXPECT_EQ(f.maxFlowBufferSegments, 4096u);
  EXPECT_EQ(f.closedLingerNs, 5'000'000'000ULL);
}

TEST(PipelineOptions, FramingAndReassemblyFlagsConvertTheirUnits) {
  const Config c = parse({"--max-request-mib", "3", "--max-header-kib", "8", "--max-request-line-kib", "2",
                          "--max-resync-scan-kib", "5", "--max-flows", "100", "--max-flow-buffer-mib", "1",
                          "--max-buffer-mib", "32", "--idle-timeout", "7", "--gap-timeout-ms", "250",
                          "--max-flow-buffer-segments", "64", "--closed-linger-ms", "1500"});
  const http::FramerLimits fl = framerLimitsOf(c);
  EXPECT_EQ(fl.maxRequestBytes, size_t(3) << 20);
  EXPECT_EQ(fl.maxHeaderBytes, size_t(8) << 10);
  EXPECT_EQ(fl.maxRequestLineBytes, size_t(2) << 10);
  EXPECT_EQ(fl.maxResyncScanBytes, size_t(5) << 10);
  // HTTP/2 streams are held to the HTTP/1 request and header limits.
  const h2::H2DecoderLimits hl = h2LimitsOf(c);
  EXPECT_EQ(hl.maxStreamBodyBytes, fl.maxRequestBytes);
  EXPECT_EQ(hl.maxHeaderListBytes, fl.maxHeaderBytes);
  const flow::FlowLimits f = flowLimitsOf(c);
  EXPECT_EQ(f.maxFlows, 100u);
  EXPECT_EQ(f.maxFlowBufferBytes, size_t(1) << 20);
  EXPECT_EQ(f.maxTotalBufferBytes, size_t(32) << 20);
  EXPECT_EQ(f.idleTimeoutNs, 7'000'000'000ULL);
  EXPECT_EQ(f.gapTimeoutNs, 250'000'000ULL);
  EXPECT_EQ(f.maxFlowBufferSegments, 64u);
  EXPECT_EQ(f.closedLingerNs, 1'500'000'000ULL);
}

TEST(PipelineOptions, CompareMaxMibBoundsTheResponsesTheEngineHolds) {
  EXPECT_EQ(engineOptionsOf(parse({})).maxHeldBytes, uint64_t(256) << 20);
  const std::vector<std::string> compared = {"--rule", "port=8001,mirror=127.0.0.1:9001,compare=true"};
  auto with = [&](std::vector<std::string> args) {
    args.insert(args.begin(), compared.begin(), compared.end());
    return parse(std::move(args));
  };
  EXPECT_EQ(engineOptionsOf(with({"--compare-max-mib", "3"})).maxHeldBytes, uint64_t(3) << 20);
  EXPECT_EQ(engineOptionsOf(with({"--compare-max-mib", "1048576"})).maxHeldBytes, uint64_t(1) << 40);
}

// A mirror's pool: its limits from the rule (the flags are every rule's
// defaults; a mirror's own keys after ';' win), its timeouts from the flags.
TEST(PipelineOptions, PoolOptionsTakeTheMirrorsLimitsAndTheFlagsTimeouts) {
  const Config c = parse({"--rule",
                          "port=9000,mirror=127.0.0.1:9001,queue=100,mirror=127.0.0.1:9002;connections=4;"
                          "queue-mib=2;max-rps=50;drop-policy=oldest",
                          "--mirror-connections", "8", "--mirror-max-connections", "64", "--connect-timeout-ms", "250",
                          "--response-timeout-ms", "900", "--idle-connection-timeout-ms", "3000", "--resolve-interval",
                          "7"});
  ASSERT_EQ(c.rules.size(), 2u);
  ASSERT_EQ(c.rules[1].mirrors.size(), 2u);
  const replay::MirrorPoolOptions a = poolOptionsOf(c, c.rules[1].mirrors[0], {});
  EXPECT_EQ(a.target, "127.0.0.1:9001");
  EXPECT_EQ(a.minConnections, 8u);
  EXPECT_EQ(a.maxConnections, 64u);
  EXPECT_EQ(a.queueCapacity, 100u);
  EXPECT_EQ(a.queueBytes, size_t(64) << 20);
  EXPECT_EQ(a.dropPolicy, replay::DropPolicy::kNewest);
  EXPECT_EQ(a.maxRps, 0u);
  EXPECT_EQ(a.connectTimeout, std::chrono::milliseconds(250));
  EXPECT_EQ(a.responseTimeout, std::chrono::milliseconds(900));
  EXPECT_EQ(a.idleTimeout, std::chrono::milliseconds(3000));
  EXPECT_EQ(a.resolveInterval, std::chrono::milliseconds(7000));
  EXPECT_EQ(a.localEndpoints, nullptr) << "not configuration: the pipeline adds it";
  const replay::MirrorPoolOptions b = poolOptionsOf(c, c.rules[1].mirrors[1], {});
  EXPECT_EQ(b.target, "127.0.0.1:9002");
  EXPECT_EQ(b.minConnections, 4u);
  EXPECT_EQ(b.maxConnections, 4u) << "connections=N is a fixed pool";
  EXPECT_EQ(b.queueCapacity, 100u) << "the rule's key is every mirror's default";
  EXPECT_EQ(b.queueBytes, size_t(2) << 20);
  EXPECT_EQ(b.dropPolicy, replay::DropPolicy::kOldest);
  EXPECT_EQ(b.maxRps, 50u);
}

TEST(PipelineOptions, MirrorIoIsAutoByDefaultAndTakesUringOrEpoll) {
  const auto io = [](std::vector<std::string> extra) {
    const Config c = parse(std::move(extra));
    return poolOptionsOf(c, c.rules[0].mirrors[0], {}).io;
  };
  EXPECT_EQ(io({}), replay::MirrorIo::kAuto);
  EXPECT_EQ(io({"--mirror-io", "uring"}), replay::MirrorIo::kUring);
  EXPECT_EQ(io({"--mirror-io", "epoll"}), replay::MirrorIo::kEpoll);

  std::vector<std::string> args = {"shadowtap", "-i", "eth0", "--rule", "port=8000,mirror=127.0.0.1:9000",
                                   "--mirror-io", "poll"};
  std::vector<char*> argv;
  for (auto& a : args) {
    argv.push_back(a.data());
  }
  Config c;
  std::string error;
  EXPECT_FALSE(reparseConfig(static_cast<int>(argv.size()), argv.data(), c, &error));
  EXPECT_NE(error.find("--mirror-io"), std::string::npos) << error;
  EXPECT_NE(error.find("poll"), std::string::npos) << error;
}

}  // namespace
}  // namespace shadowtap
