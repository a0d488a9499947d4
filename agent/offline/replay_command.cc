#include "offline/replay_command.h"

#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>

#include "base/counters.h"
#include "http/host_rewrite.h"
#include "offline/record_reader.h"
#include "offline/replay_run.h"
#include "replay/mirror_pool.h"
#include "replay/target.h"

namespace shadowtap::offline {
namespace {

// h2c streams per connection a replay keeps open (the live mirror takes what
// the server advertises, up to 1000).
constexpr size_t kReplayStreams = 100;

std::atomic<bool> gStop{false};

void onSignal(int) { gStop.store(true, std::memory_order_relaxed); }


std::string row(std::string_view label, uint64_t v) { return fmt::format("  {:<30}{:>12}\n", label, v); }

uint64_t h2Load(const replay::MirrorStats* h2, const std::atomic<uint64_t> replay::MirrorStats::*field) {
  return h2 == nullptr ? 0 : base::load(h2->*field);
}

}  // namespace

std::string formatProgress(uint64_t submitted, uint64_t total, double seconds, const replay::MirrorStats& r,
                           const replay::MirrorStats* h2) {
  using S = replay::MirrorStats;
  const double rate = seconds > 0 ? static_cast<double>(submitted) / seconds : 0.0;
  std::string sent = total > 0 ? fmt::format("{}/{}", submitted, total) : fmt::format("{}", submitted);
  const uint64_t errors = r.errors() + (h2 == nullptr ? 0 : h2->errors());
  const uint64_t dropped = base::load(r.queueFull) + base::load(r.droppedOldest) + base::load(r.droppedRateLimit) +
                           base::load(r.droppedShutdown) + h2Load(h2, &S::queueFull) + h2Load(h2, &S::droppedShutdown);
  const int64_t inFlight =
      r.inFlight.load(std::memory_order_relaxed) + (h2 == nullptr ? 0 : h2->inFlight.load(std::memory_order_relaxed));
  return fmt::format(
      "replay {:.1f}s sent {} ({:.1f} req/s) | 2xx {} 3xx {} 4xx {} 5xx {} | errors {} | dropped {} | in flight {}",
      seconds, sent, rate, base::load(r.responses2xx) + h2Load(h2, &S::responses2xx),
      base::load(r.responses3xx) + h2Load(h2, &S::responses3xx), base::load(r.responses4xx) + h2Load(h2, &S::responses4xx),
      base::load(r.responses5xx) + h2Load(h2, &S::responses5xx), errors, dropped, inFlight);
}

std::string formatSummary(const ReplaySummary& s, const replay::MirrorStats& r, const replay::MirrorStats* h2) {
  std::string out = s.interrupted ? "shadowtap replay summary (interrupted)\n" : "shadowtap replay summary\n";
  out += row("files", s.files);
  out += row("requests read", s.requestsRead);
  out += row("  of them HTTP/2", s.http2Read);
  out += row("  unreadable records skipped", s.malformed);
  out += row("  files cut by a crash", s.cutFiles);
  out += row("  filtered out", s.filtered);
  out += row("  body not recorded, skipped", s.noBody);
  out += row("passes", s.passes);
  out += row("sent to the replayer", base::load(r.submitted));
  out += row("written to the mirror", base::load(r.sent));
  out += row("responses", base::load(r.responses));
  out += row("  1xx", base::load(r.responses1xx));
  out += row("  2xx", base::load(r.responses2xx));
  out += row("  3xx", base::load(r.responses3xx));
  out += row("  4xx", base::load(r.responses4xx));
  out += row("  5xx", base::load(r.responses5xx));
  out += row("  other status", base::load(r.responsesOther));
  out += row("errors", r.errors());
  out += row("  connect", base::load(r.errorsConnect));
  out += row("  connect timeout", base::load(r.errorsConnectTimeout));
  out += row("  reset", base::load(r.errorsReset));
  out += row("  response timeout", base::load(r.errorsResponseTimeout));
  out += row("  bad response", base::load(r.errorsBadResponse));
  out += row("  response too large", base::load(r.errorsResponseTooLarge));
  out += row("dropped", base::load(r.queueFull) + base::load(r.droppedOldest) + base::load(r.droppedRateLimit) + base::load(r.droppedShutdown));
  out += row("  queue full", base::load(r.queueFull));
  out += row("  dropped oldest", base::load(r.droppedOldest));
  out += row("  rate limited", base::load(r.droppedRateLimit));
  out += row("  shutdown", base::load(r.droppedShutdown));
  if (h2 != nullptr) {
    out += "HTTP/2 (h2c)\n";
    out += row("sent to the HTTP/2 pool", base::load(h2->submitted));
    out += row("responses", base::load(h2->responses));
    out += row("  2xx", base::load(h2->responses2xx));
    out += row("  3xx", base::load(h2->responses3xx));
    out += row("  4xx", base::load(h2->responses4xx));
    out += row("  5xx", base::load(h2->responses5xx));
    out += row("  other status", base::load(h2->responsesOther));
    out += row("  grpc-status 0", base::load(h2->grpcOk));
    out += row("  grpc-status not 0", base::load(h2->grpcError));
    out += row("errors", h2->errors());
    out += row("  connect", base::load(h2->errorsConnect) + base::load(h2->errorsConnectTimeout));
    out += row("  stream reset", base::load(h2->errorsReset));
    out += row("  connection lost", base::load(h2->errorsConnection));
    out += row("  response timeout", base::load(h2->errorsResponseTimeout));
    out += row("  rejected by nghttp2", base::load(h2->errorsRejected));
    out += row("dropped", base::load(h2->queueFull) + base::load(h2->droppedShutdown));
    out += row("  queue full", base::load(h2->queueFull));
    out += row("  shutdown", base::load(h2->droppedShutdown));
  }
  const double rate = s.seconds > 0 ? static_cast<double>(s.submitted) / s.seconds : 0.0;
  out += fmt::format("  {:<30}{:>12.2f}\n", "seconds", s.seconds);
  out += fmt::format("  {:<30}{:>12.1f}\n", "requests per second", rate);
  return out;
}

namespace {

// `shadowtap replay`'s flags.
struct ReplayArgs {
  std::vector<std::string> files;
  std::string mirror;
  double speed = 1.0;
  uint32_t maxRps = 0;
  uint64_t passes = 1;  // 0: until stopped
  std::vector<std::string> methods;  // upper case
  std::vector<std::string> prefixes;
  std::string suffix{http::kDefaultShadowSuffix};
  size_t connections = 16;
  size_t h2Connections = 2;
  uint32_t timeoutMs = 5000;
  size_t queue = 4096;
};

// Reads the command line into `a`; the exit code when the command ends here
// (--help, or a bad flag, said on stderr).
std::optional<int> parseArgs(int argc, char** argv, ReplayArgs& a) {
  CLI::App app{"Send recorded requests (HAR or JSON lines from --record) to a target, with the live "
               "mirror's Host rewrite, pool, limits and outcome counters; HTTP/2 records go over h2c."};
  app.name("shadowtap replay");
  std::vector<std::string> loopValues;
  app.add_option("files", a.files, "recordings (.har / .jsonl; the format is read from the content)")
      ->required()
      ->check(CLI::ExistingFile);
  app.add_option("-m,--mirror", a.mirror, "target host:port")->required();
  app.add_option("--speed", a.speed, "1: original pacing, 2: twice as fast, 0: as fast as allowed")
      ->check(CLI::Range(0.0, 1e6));
  app.add_option("--max-rps", a.maxRps, "requests per second at most (0: unlimited); paces, never drops");
  auto* loopOpt = app.add_option("--loop", loopValues, "play the files N times; without N: until SIGINT")
                      ->expected(0, 1);
  app.add_option("--method", a.methods, "only these methods (repeatable)");
  app.add_option("--path-prefix", a.prefixes, "only targets whose path starts with this (repeatable)");
  app.add_option("--shadow-suffix", a.suffix,
                 "appended to the host part of Host / HTTP/2 :authority (\"\" sends it unchanged)");
  app.add_option("--connections", a.connections, "keep-alive connections to the target")->check(CLI::Range(1, 4096));
  app.add_option("--h2-connections", a.h2Connections, "HTTP/2 (h2c) connections to the target, for HTTP/2 records")
      ->check(CLI::Range(1, 256));
  app.add_option("--timeout-ms", a.timeoutMs, "connect and response timeout")->check(CLI::Range(1u, 3600000u));
  app.add_option("--queue", a.queue, "requests waiting for a connection; beyond, dropped (speed > 0)")
      ->check(CLI::Range(1, 1 << 24));
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string msg = e.what();
    std::cerr << "shadowtap replay: " << msg << " (see shadowtap replay --help)" << std::endl;
    return 2;
  }
  if (loopOpt->count() > 0) {
    a.passes = 0;
    if (!loopValues.empty() && !loopValues[0].empty()) {
      try {
        size_t used = 0;
        const long long n = std::stoll(loopValues[0], &used);
        if (used != loopValues[0].size() || n < 1) {
          throw std::invalid_argument("loop");
        }
        a.passes = static_cast<uint64_t>(n);
      } catch (const std::exception&) {
        std::cerr << "shadowtap replay: --loop takes a number of passes >= 1 (or nothing: forever)" << std::endl;
        return 2;
      }
    }
  }
  for (auto& m : a.methods) {
    std::transform(m.begin(), m.end(), m.begin(), [](unsigned char c) { return std::toupper(c); });
  }
  if (!a.suffix.empty() && a.suffix.find_first_of(" \t\r\n:/[]@") != std::string::npos) {
    std::cerr << "shadowtap replay: --shadow-suffix '" << a.suffix << "' must be host name characters" << std::endl;
    return 2;
  }
  return std::nullopt;
}

// Reads every file before sending anything, so a bad file stops the replay
// before it starts (said on stderr: false). Several files (rotated ones, or
// several agents') play in recorded time order.
bool loadPlan(const ReplayArgs& a, ReplayPlan& plan, ReplaySummary& summary) {
  plan.speed = a.speed;
  plan.maxRps = a.maxRps;
  plan.passes = a.passes;
  plan.suffix = a.suffix;
  RequestFilter filter{a.methods, a.prefixes};
  for (const auto& path : a.files) {
    ReadResult rr = readRecordFile(path);
    if (!rr.error.empty()) {
      std::cerr << "shadowtap replay: " << path << ": " << rr.error << std::endl;
      return false;
    }
    ++summary.files;
    summary.requestsRead += rr.requests.size();
    summary.http2Read += static_cast<uint64_t>(
        std::count_if(rr.requests.begin(), rr.requests.end(), [](const auto& r) { return r.isHttp2(); }));
    summary.malformed += rr.malformed;
    if (rr.malformed > 0) {
      std::cerr << "shadowtap replay: " << path << ": " << rr.malformed << " unreadable record"
                << (rr.malformed == 1 ? "" : "s") << " skipped; first: " << rr.firstMalformed << std::endl;
    }
    summary.cutFiles += rr.cut ? 1 : 0;
    for (auto& r : rr.requests) {
      if (!filter.matches(r)) {
        ++summary.filtered;
      } else if (!r.bodyKept && r.bodyLength > 0) {
        ++summary.noBody;
      } else {
        plan.requests.push_back(std::move(r));
      }
    }
  }
  // Several files (rotated ones, or several agents') play in recorded time
  // order; a stable sort keeps each connection's own order.
  std::stable_sort(plan.requests.begin(), plan.requests.end(),
                   [](const auto& a, const auto& b) { return a.unixNs < b.unixNs; });
  return true;
}

// The HTTP/1 pool, a fixed one of --connections, and the h2c pool when the
// plan holds HTTP/2 records (what the live mirror does: prior knowledge).
// Null pools and a line on stderr when one cannot start.
bool startPools(const ReplayArgs& a, const replay::ResolveResult& resolved, const ReplayPlan& plan,
                std::unique_ptr<replay::MirrorPool>& http1, std::unique_ptr<replay::MirrorPool>& h2) {
  replay::MirrorPoolOptions ro;
  ro.target = a.mirror;
  ro.addrs = resolved.addrs;
  ro.minConnections = a.connections;  // a fixed pool of --connections (no growth)
  ro.maxConnections = a.connections;
  ro.maxConcurrentStreams = kReplayStreams;
  ro.queueCapacity = a.queue;
  ro.maxRps = 0;  // the pacer spaces requests for --max-rps; a replay waits instead of dropping
  ro.connectTimeout = std::chrono::milliseconds(a.timeoutMs);
  ro.responseTimeout = std::chrono::milliseconds(a.timeoutMs);
  http1 = std::make_unique<replay::MirrorPool>(ro);
  if (!http1->start()) {
    http1.reset();
    std::cerr << "shadowtap replay: cannot start the replay event loop" << std::endl;
    return false;
  }
  if (std::any_of(plan.requests.begin(), plan.requests.end(), [](const auto& r) { return r.isHttp2(); })) {
    replay::MirrorPoolOptions po = ro;
    po.protocol = model::Protocol::kHttp2;
    po.minConnections = a.h2Connections;
    po.maxConnections = a.h2Connections;
    h2 = std::make_unique<replay::MirrorPool>(po);
    if (!h2->start()) {
      h2.reset();
      http1->stop(std::chrono::milliseconds(0));
      http1.reset();
      std::cerr << "shadowtap replay: cannot start the HTTP/2 event loop" << std::endl;
      return false;
    }
  }
  return true;
}

// As fast as allowed: the queue is kept short so the pool sets the pace
// (HTTP/2: streams, not connections, set it).
bool poolsBusy(const ReplayArgs& a, const replay::MirrorStats& rs, const replay::MirrorStats* h2Stats) {
  if (rs.queueDepth.load(std::memory_order_relaxed) >= static_cast<int64_t>(std::max<size_t>(a.connections, 4))) {
    return true;
  }
  const int64_t h2Streams = static_cast<int64_t>(a.h2Connections * kReplayStreams);
  return h2Stats != nullptr &&
         (h2Stats->queueDepth.load(std::memory_order_relaxed) >= static_cast<int64_t>(std::max<size_t>(a.h2Connections, 4)) ||
          h2Stats->inFlight.load(std::memory_order_relaxed) >= h2Streams);
}

}  // namespace

int runReplayCommand(int argc, char** argv) {
  ReplayArgs a;
  if (const std::optional<int> code = parseArgs(argc, argv, a)) {
    return *code;
  }
  ReplaySummary summary;
  ReplayPlan plan;
  if (!loadPlan(a, plan, summary)) {
    return 1;
  }
  replay::ResolveResult resolved = replay::resolveTarget(a.mirror);
  if (!resolved.error.empty()) {
    std::cerr << "shadowtap replay: --mirror " << a.mirror << ": " << resolved.error << std::endl;
    return 1;
  }
  // stdout carries progress and the summary; warnings (connect failures) go to stderr.
  spdlog::set_default_logger(
      std::make_shared<spdlog::logger>("replay", std::make_shared<spdlog::sinks::stderr_color_sink_mt>()));
  spdlog::set_level(spdlog::level::warn);
  signal(SIGPIPE, SIG_IGN);
  std::unique_ptr<replay::MirrorPool> replayer;
  std::unique_ptr<replay::MirrorPool> pool;
  if (!startPools(a, resolved, plan, replayer, pool)) {
    return 1;
  }
  const replay::MirrorStats* h2Stats = pool ? &pool->stats() : nullptr;
  struct sigaction sa {};
  sa.sa_handler = onSignal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  const bool tty = isatty(STDOUT_FILENO) == 1;
  SteadyClock clock;
  RunCounters counters;
  const uint64_t startNs = clock.nowNs();
  uint64_t nextProgress = startNs + (tty ? 200'000'000ULL : 5'000'000'000ULL);
  const uint64_t total = a.passes == 0 ? 0 : plan.requests.size() * a.passes;
  const replay::MirrorStats& rs = replayer->stats();
  auto tick = [&] {
    const uint64_t now = clock.nowNs();
    if (now < nextProgress) {
      return;
    }
    nextProgress = now + (tty ? 200'000'000ULL : 5'000'000'000ULL);
    const std::string line =
        formatProgress(base::load(counters.submitted), total, double(now - startNs) / 1e9, rs, h2Stats);
    if (tty) {
      std::printf("\r%s\033[K", line.c_str());
    } else {
      std::printf("%s\n", line.c_str());
    }
    std::fflush(stdout);
  };
  const auto busy = [&] { return poolsBusy(a, rs, h2Stats); };
  runPlan(plan, *replayer, pool.get(), clock, gStop, busy, tick, counters);
  // Let what is queued and in flight finish (bounded by the timeouts).
  const auto drain = std::chrono::milliseconds(gStop.load() ? 1000 : uint64_t{a.timeoutMs} * 2 + 1000);
  replayer->stop(drain);
  if (pool) {
    pool->stop(drain);
  }
  if (tty) {
    std::printf("\r%s\033[K\n",
                formatProgress(base::load(counters.submitted), total, double(clock.nowNs() - startNs) / 1e9, rs, h2Stats)
                    .c_str());
  }
  summary.passes = base::load(counters.passes);
  summary.submitted = base::load(counters.submitted);
  summary.seconds = double(clock.nowNs() - startNs) / 1e9;
  summary.interrupted = gStop.load();
  std::printf("%s", formatSummary(summary, rs, h2Stats).c_str());
  std::fflush(stdout);
  return 0;
}

}  // namespace shadowtap::offline
