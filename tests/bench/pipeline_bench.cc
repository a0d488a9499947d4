// Pipeline throughput: a synthetic capture (many interleaved keep-alive
// connections, segments of at most 1448 payload bytes) through
// flow::FlowTable -> http::RequestFramerFactory -> http::takeRewrittenRequest into
// a sink that only counts, on one core; against llhttp parsing the same request
// bytes from one contiguous buffer with no-op callbacks (the limit of framing).
// Last, the whole agent in-process (agent_run.h): the real Pipeline, built from
// a command line, fed by a synthetic segment source (tests/pipeline), mirroring
// to a loopback HTTP/1 sink: requests/s and agent CPU per mirrored request.
//
// Usage: pipeline_bench [--runs N] [--quick] [--agent-only] [--json FILE]
// Prints a table; --json writes the medians for scripts/bench.sh.

#include <llhttp.h>
#include <time.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "agent_run.h"
#include "base/memory_tuning.h"
#include "flow/flow_table.h"
#include "http/host_rewrite.h"
#include "http/request_framer.h"

namespace {

using shadowtap::flow::EndReason;
using shadowtap::model::FlowKey;
using shadowtap::flow::FlowLimits;
using shadowtap::flow::FlowTable;
using shadowtap::flow::Segment;
using shadowtap::flow::StreamConsumer;
using shadowtap::flow::StreamConsumerFactory;

constexpr size_t kMss = 1448;

uint64_t nowNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000ULL + uint64_t(ts.tv_nsec);
}

// A small GET of about 200 bytes; `id` varies the target so requests differ.
std::string smallGet(uint64_t id) {
  char target[64];
  std::snprintf(target, sizeof(target), "/api/v1/items/%08llu?page=3", static_cast<unsigned long long>(id));
  std::string r = std::string("GET ") + target +
                  " HTTP/1.1\r\n"
                  "Host: httpbin:8000\r\n"
                  "User-Agent: shadowtap-bench/1.0\r\n"
                  "Accept: application/json\r\n"
                  "Accept-Encoding: gzip\r\n"
                  "X-Request-Id: ";
  char rid[32];
  std::snprintf(rid, sizeof(rid), "%016llx", static_cast<unsigned long long>(id * 2654435761ULL));
  r += rid;
  r += "\r\n\r\n";
  return r;
}

std::string post16k(uint64_t id) {
  std::string body(16384, 'a' + char(id % 26));
  char head[256];
  std::snprintf(head, sizeof(head),
                "POST /api/v1/upload/%08llu HTTP/1.1\r\n"
                "Host: httpbin:8000\r\n"
                "User-Agent: shadowtap-bench/1.0\r\n"
                "Content-Type: application/octet-stream\r\n"
                "Content-Length: %zu\r\n\r\n",
                static_cast<unsigned long long>(id), body.size());
  return head + body;
}

// One synthetic capture: segments whose payloads live, in capture order, in one
// buffer (as records would in the ring buffer), and the same requests back to
// back in another buffer for the bare parse.
struct Workload {
  std::string name;
  std::vector<uint8_t> captureBytes;
  struct Seg {
    shadowtap::model::FlowKey key;
    uint32_t seq;
    uint8_t flags;
    size_t off;
    size_t len;
    bool endsRequest = false;
  };
  std::vector<Seg> segs;
  std::string contiguous;
  std::vector<uint32_t> requestLengths;  // in `contiguous` order
  uint64_t requests = 0;
  uint64_t requestBytes = 0;
};

// `conns` connections open at once, each carrying `perConn` requests before its
// FIN; every `postEvery`-th request (0 = none) is a 16 KiB POST, else a small GET.
// Segments are taken round-robin over the open connections, one at a time.
Workload makeWorkload(const std::string& name, uint64_t totalRequests, size_t conns, size_t perConn,
                      uint64_t postEvery, bool postsOnly) {
  Workload w;
  w.name = name;
  struct Conn {
    shadowtap::model::FlowKey key;
    uint32_t nextSeq = 0;
    size_t requestsLeft = 0;
    std::string pending;  // bytes of the current request not yet segmented
    size_t pendingOff = 0;
    bool synSent = false;
  };
  uint64_t made = 0;
  uint16_t nextPort = 1024;
  uint32_t nextClient = 0;
  auto openConn = [&](Conn& c) {
    c = Conn{};
    c.key.family = 4;
    const uint32_t client = nextClient++;
    // 198.18.x.y clients to 198.19.0.1:8000.
    c.key.saddr[0] = 198;
    c.key.saddr[1] = 18;
    c.key.saddr[2] = uint8_t(client >> 8);
    c.key.saddr[3] = uint8_t(client);
    c.key.daddr[0] = 198;
    c.key.daddr[1] = 19;
    c.key.daddr[3] = 1;
    c.key.sport = nextPort++;
    if (nextPort == 0) {
      nextPort = 1024;
    }
    c.key.dport = 8000;
    c.nextSeq = 1000u + client * 7919u;
    c.requestsLeft = perConn;
  };
  std::vector<Conn> open(conns);
  for (auto& c : open) {
    openConn(c);
  }
  std::vector<std::string> bareOrder;
  size_t live = conns;
  std::vector<bool> done(conns, false);
  while (live > 0) {
    for (size_t i = 0; i < conns; ++i) {
      if (done[i]) {
        continue;
      }
      Conn& c = open[i];
      if (!c.synSent) {
        w.segs.push_back({c.key, c.nextSeq, shadowtap::flow::kTcpSyn, 0, 0});
        c.nextSeq += 1;
        c.synSent = true;
        continue;
      }
      if (c.pendingOff == c.pending.size()) {
        if (c.requestsLeft == 0 || made >= totalRequests) {
          w.segs.push_back({c.key, c.nextSeq, uint8_t(shadowtap::flow::kTcpFin | shadowtap::flow::kTcpAck), 0, 0});
          if (made >= totalRequests) {
            done[i] = true;
            --live;
          } else {
            openConn(c);
          }
          continue;
        }
        const bool post = postsOnly || (postEvery != 0 && made % postEvery == postEvery - 1);
        c.pending = post ? post16k(made) : smallGet(made);
        c.pendingOff = 0;
        w.contiguous += c.pending;
        w.requestLengths.push_back(uint32_t(c.pending.size()));
        w.requestBytes += c.pending.size();
        ++made;
        --c.requestsLeft;
      }
      const size_t len = std::min(kMss, c.pending.size() - c.pendingOff);
      const size_t off = w.captureBytes.size();
      w.captureBytes.insert(w.captureBytes.end(), c.pending.begin() + long(c.pendingOff),
                            c.pending.begin() + long(c.pendingOff + len));
      c.pendingOff += len;
      w.segs.push_back({c.key, c.nextSeq, shadowtap::flow::kTcpAck, off, len, c.pendingOff == c.pending.size()});
      c.nextSeq += uint32_t(len);
    }
  }
  w.requests = made;
  return w;
}

// --- sinks ---

struct CountingSink final : shadowtap::model::RequestSink {
  bool rewrite = true;
  uint64_t requests = 0;
  uint64_t bytes = 0;
  uint64_t skipped = 0;
  void onRequest(shadowtap::model::Request&& r) override {
    ++requests;
    if (!rewrite) {
      bytes += r.bytes.size();
      return;
    }
    // Exactly what the agent does before queueing (agent/pipeline.cc).
    if (shadowtap::http::hostHasSuffix(r.authority(), shadowtap::http::kDefaultShadowSuffix)) {
      ++skipped;
      return;
    }
    std::string out = shadowtap::http::takeRewrittenRequest(std::move(r), shadowtap::http::kDefaultShadowSuffix);
    bytes += out.size();
  }
};

// Reassembly alone: a consumer that only counts the in-order bytes.
struct ByteCounter final : StreamConsumer {
  uint64_t* total;
  explicit ByteCounter(uint64_t* t) : total(t) {}
  void onData(std::span<const uint8_t> b, uint64_t) override { *total += b.size(); }
  void onGap(uint64_t) override {}
  void onEnd(EndReason) override {}
  size_t bufferedBytes() const override { return 0; }
};
struct ByteCounterFactory final : StreamConsumerFactory {
  uint64_t total = 0;
  std::unique_ptr<StreamConsumer> create(const shadowtap::model::FlowKey&, uint32_t, bool) override {
    return std::make_unique<ByteCounter>(&total);
  }
};

enum class Stage { kFlowOnly, kFlowFraming, kFull };

struct RunResult {
  double seconds = 0;
  uint64_t requests = 0;
  uint64_t bytesOut = 0;
};

RunResult runPipeline(const Workload& w, Stage stage) {
  FlowLimits limits;
  RunResult r;
  CountingSink sink;
  sink.rewrite = stage == Stage::kFull;
  ByteCounterFactory bytesOnly;
  shadowtap::http::RequestFramerFactory framers(sink);
  StreamConsumerFactory& factory =
      stage == Stage::kFlowOnly ? static_cast<StreamConsumerFactory&>(bytesOnly) : framers;
  const uint64_t t0 = nowNs();
  {
    FlowTable table(limits, factory);
    uint64_t ts = 1'000'000'000;
    uint64_t nextExpire = ts + 100'000'000;
    Segment s;
    s.ruleId = 1;
    s.ifindex = 2;
    for (const auto& g : w.segs) {
      s.key = g.key;
      s.seq = g.seq;
      s.ack = 1;
      s.flags = g.flags;
      s.tsNs = ts;
      s.payload = std::span<const uint8_t>(w.captureBytes.data() + g.off, g.len);
      table.ingest(s);
      ts += 500;  // 2M segments per synthetic second
      if (ts >= nextExpire) {
        table.expire(ts);
        nextExpire = ts + 100'000'000;
      }
    }
    table.shutdown();
  }
  r.seconds = double(nowNs() - t0) / 1e9;
  r.requests = stage == Stage::kFlowOnly ? 0 : sink.requests;
  r.bytesOut = stage == Stage::kFlowOnly ? bytesOnly.total : sink.bytes;
  return r;
}

int onComplete(llhttp_t* p) {
  ++*static_cast<uint64_t*>(p->data);
  return 0;
}

RunResult runBareParse(const Workload& w) {
  llhttp_settings_t settings;
  llhttp_settings_init(&settings);
  settings.on_message_complete = onComplete;  // counting only; every other callback unset
  llhttp_t parser;
  uint64_t count = 0;
  const uint64_t t0 = nowNs();
  llhttp_init(&parser, HTTP_REQUEST, &settings);
  parser.data = &count;
  const llhttp_errno_t err = llhttp_execute(&parser, w.contiguous.data(), w.contiguous.size());
  RunResult r;
  r.seconds = double(nowNs() - t0) / 1e9;
  if (err != HPE_OK) {
    std::fprintf(stderr, "bare parse error: %s\n", llhttp_errno_name(err));
  }
  r.requests = count;
  r.bytesOut = w.contiguous.size();
  return r;
}

// The least any mirror must add to framing: one owned copy of every request.
// Timed on its own and added to the bare parse for a second, stricter baseline.
double copyEachRequest(const Workload& w) {
  const uint64_t t0 = nowNs();
  size_t off = 0;
  uint64_t sum = 0;
  for (uint32_t len : w.requestLengths) {
    std::string copy(w.contiguous.data() + off, len);
    sum += uint8_t(copy[len / 2]);
    off += len;
  }
  const double s = double(nowNs() - t0) / 1e9;
  if (sum == 1) {
    std::fprintf(stderr, "%s", "");  // keeps the copies observable
  }
  return s;
}

// The workload as the agent stage's segments (payloads point into w.captureBytes).
std::vector<shadowtap::bench::AgentSegment> agentSegments(const Workload& w) {
  std::vector<shadowtap::bench::AgentSegment> out;
  for (const auto& g : w.segs) {
    shadowtap::bench::AgentSegment a;
    a.segment.key = g.key;
    a.segment.ruleId = 1;
    a.segment.seq = g.seq;
    a.segment.ack = 1;
    a.segment.flags = g.flags;
    a.segment.payload = std::span<const uint8_t>(w.captureBytes.data() + g.off, g.len);
    a.endsRequest = g.endsRequest;
    out.push_back(a);
  }
  return out;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
  shadowtap::tuneAllocatorForRequests();  // as the agent does at start
  int runs = 5;
  bool quick = false;
  bool agentOnly = false;  // only the whole-agent stage (for profiles: perf, strace -c)
  const char* jsonPath = nullptr;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--runs") && i + 1 < argc) {
      runs = std::atoi(argv[++i]);
    } else if (!std::strcmp(argv[i], "--quick")) {
      quick = true;
    } else if (!std::strcmp(argv[i], "--agent-only")) {
      agentOnly = true;
    } else if (!std::strcmp(argv[i], "--json") && i + 1 < argc) {
      jsonPath = argv[++i];
    } else {
      std::fprintf(stderr, "usage: %s [--runs N] [--quick] [--agent-only] [--json FILE]\n", argv[0]);
      return 2;
    }
  }
  const uint64_t scale = quick ? 10 : 1;
  std::vector<Workload> loads;
  // 512 connections open at once, 100 keep-alive requests each.
  loads.push_back(makeWorkload("small GET (~200 B)", 500'000 / scale, 512, 100, 0, false));
  loads.push_back(makeWorkload("mixed (1 in 10 is a 16 KiB POST)", 100'000 / scale, 512, 100, 10, false));
  loads.push_back(makeWorkload("16 KiB POST", 20'000 / scale, 512, 100, 0, true));

  FILE* json = jsonPath ? std::fopen(jsonPath, "w") : nullptr;
  if (jsonPath && !json) {
    std::perror(jsonPath);
    return 1;
  }
  if (json) {
    std::fprintf(json, "{\"runs\": %d, \"workloads\": [\n", runs);
  }
  bool ok = true;
  for (size_t li = 0; li < loads.size() && !agentOnly; ++li) {
    const Workload& w = loads[li];
    std::vector<double> tBare, tCopy, tFlow, tFrame, tFull;
    uint64_t reqFull = 0, reqBare = 0, reqFrame = 0;
    // Interleaved so drift on a shared machine hits every variant alike.
    for (int r = 0; r < runs; ++r) {
      RunResult b = runBareParse(w);
      tBare.push_back(b.seconds);
      reqBare = b.requests;
      tCopy.push_back(b.seconds + copyEachRequest(w));
      tFlow.push_back(runPipeline(w, Stage::kFlowOnly).seconds);
      RunResult f = runPipeline(w, Stage::kFlowFraming);
      tFrame.push_back(f.seconds);
      reqFrame = f.requests;
      RunResult full = runPipeline(w, Stage::kFull);
      tFull.push_back(full.seconds);
      reqFull = full.requests;
    }
    if (reqFull != w.requests || reqBare != w.requests || reqFrame != w.requests) {
      std::fprintf(stderr, "%s: request count mismatch: generated %llu, bare %llu, framed %llu, full %llu\n",
                   w.name.c_str(), (unsigned long long)w.requests, (unsigned long long)reqBare,
                   (unsigned long long)reqFrame, (unsigned long long)reqFull);
      ok = false;
    }
    const double mb = double(w.requestBytes) / 1e6;
    const double n = double(w.requests);
    const double bareCopy = median(tCopy);
    const double bare = median(tBare), flow = median(tFlow), frame = median(tFrame), full = median(tFull);
    std::printf("%s: %llu requests, %.1f MB, %zu segments, %d runs (median)\n", w.name.c_str(),
                (unsigned long long)w.requests, mb, w.segs.size(), runs);
    std::printf("  bare llhttp       %10.0f req/s %8.1f MB/s\n", n / bare, mb / bare);
    std::printf("  bare llhttp + copy%10.0f req/s %8.1f MB/s\n", n / bareCopy, mb / bareCopy);
    std::printf("  flow only         %10.0f req/s %8.1f MB/s\n", n / flow, mb / flow);
    std::printf("  flow+framing      %10.0f req/s %8.1f MB/s\n", n / frame, mb / frame);
    std::printf("  flow+frame+rewrite%10.0f req/s %8.1f MB/s   %.2fx the bare-parse time\n", n / full, mb / full,
                full / bare);
    if (json) {
      std::fprintf(json,
                   "  {\"name\": \"%s\", \"requests\": %llu, \"bytes\": %llu, \"segments\": %zu,"
                   " \"bare_s\": %.6f, \"bare_copy_s\": %.6f, \"flow_s\": %.6f, \"framing_s\": %.6f, \"full_s\": %.6f,"
                   " \"bare_all_s\": [",
                   w.name.c_str(), (unsigned long long)w.requests, (unsigned long long)w.requestBytes,
                   w.segs.size(), bare, bareCopy, flow, frame, full);
      for (size_t i = 0; i < tBare.size(); ++i) {
        std::fprintf(json, "%s%.6f", i ? ", " : "", tBare[i]);
      }
      std::fprintf(json, "], \"full_all_s\": [");
      for (size_t i = 0; i < tFull.size(); ++i) {
        std::fprintf(json, "%s%.6f", i ? ", " : "", tFull[i]);
      }
      std::fprintf(json, "], \"counts_ok\": %s}%s\n", ok ? "true" : "false", li + 1 < loads.size() ? "," : "");
    }
  }
  // The whole agent in-process: the real Pipeline (one worker) from a synthetic
  // source into a loopback HTTP/1 sink, 1024 requests at most outstanding.
  const Workload agentLoad = makeWorkload("small GET (~200 B)", 100'000 / scale, 64, 100, 0, false);
  const auto agentSegs = agentSegments(agentLoad);
  std::vector<double> tAgent, cpuAgent;
  uint64_t lost = 0, answered = 0;
  for (int r = 0; r < runs; ++r) {
    const shadowtap::bench::AgentRun a = shadowtap::bench::runAgent(agentSegs, agentLoad.requests, 1, 1024);
    tAgent.push_back(a.seconds);
    cpuAgent.push_back(a.agentCpuSeconds);
    lost += a.lost;
    answered += a.answered;
  }
  const double n = double(agentLoad.requests);
  const bool agentOk = answered == agentLoad.requests * uint64_t(runs) && lost == 0;
  std::printf("whole agent (Pipeline, 1 worker, loopback mirror): %llu small GETs over 64 connections, %d runs\n",
              (unsigned long long)agentLoad.requests, runs);
  std::printf("  %10.0f req/s   agent CPU %.2f us per mirrored request   %llu answered, %llu lost\n",
              n / median(tAgent), median(cpuAgent) / n * 1e6, (unsigned long long)answered,
              (unsigned long long)lost);
  ok = ok && agentOk;
  if (json) {
    std::fprintf(json, "], \"agent\": {\"requests\": %llu, \"workers\": 1, \"seconds\": %.6f, \"cpu_s\": %.6f,"
                 " \"answered\": %llu, \"lost\": %llu, \"counts_ok\": %s}}\n",
                 (unsigned long long)agentLoad.requests, median(tAgent), median(cpuAgent),
                 (unsigned long long)answered, (unsigned long long)lost, agentOk ? "true" : "false");
    std::fclose(json);
  }
  return ok ? 0 : 1;
}
