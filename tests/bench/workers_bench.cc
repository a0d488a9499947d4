// Workers scaling (#16 item 3, the `replay` benchmark): the real per-worker
// pipeline (flow table, HTTP/1 framer, router, the worker's mirror pool) fed
// from a synthetic segment source, one thread per worker, into a real mirror
// (nginx in a namespace; tests/bench/workers_bench.py sets it up). Each worker
// thread generates keep-alive connections' GET requests as segments and calls
// Worker::onSegment, as its ring reader would; it holds back while its pool has
// more than --window requests queued, so the figure is what the pipeline and
// the mirror connections carry, not how fast a queue overflows.
//
//   workers_bench --workers N --mirror HOST:PORT [--seconds S] [--connections C] [--window W]
//                 [--rate R] [--tick-us T]
//
// --rate paces the requests (all workers together) in batches every --tick-us,
// as the kernel's ring hands them over: the CPU per request at a given rate.
// Each batch is one replay::WakeBatch, as in Worker::run (--wake-batch 0: a
// wake-up per submit that finds the pool's loop idle, as before #16 item 2).
//
// Prints one JSON object: answered requests/s in the measuring window (after
// a 1 s warm-up), per worker, and the process's CPU-microseconds per request.
#include <sys/resource.h>
#include <time.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/counters.h"
#include "replay/target.h"
#include "rule_runtime.h"
#include "worker.h"
#include "worker_share.h"

using namespace shadowtap;

namespace {

double cpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

uint64_t answered(const RuleSet& set) {
  uint64_t n = 0;
  for (const auto& mine : set.perWorker) {
    const replay::MirrorStats& s = mine[0]->mirrors[0].replayer->stats();
    n += base::load(s.responses2xx) + base::load(s.responses3xx) + base::load(s.responses4xx) +
         base::load(s.responses5xx);
  }
  return n;
}

// One worker's synthetic capture: `conns` keep-alive connections, each sending
// GET requests back to back, one segment per request, round robin.
// With `rate` > 0 (requests/s for this worker) the requests come in batches
// every `tickUs`, as a ring consume hands them over, and the thread sleeps between.
void produce(Worker& worker, RuleRuntime& rt, uint32_t first, uint32_t conns, size_t window, double rate,
             uint32_t tickUs, bool wakeBatch, const std::atomic<bool>& stop) {
  struct Conn {
    flow::Segment seg;
    uint32_t next = 1000;
  };
  std::vector<Conn> cs(conns);
  for (uint32_t i = 0; i < conns; ++i) {
    flow::Segment& s = cs[i].seg;
    s.key.family = 4;
    s.key.saddr = {198, 18, 0, 1};
    s.key.daddr = {198, 18, 0, 2};
    s.key.sport = static_cast<uint16_t>(10000 + first + i);
    s.key.dport = 8000;
    s.ruleId = 1;
    s.seq = 999;
    s.flags = flow::kTcpSyn;
    worker.onSegment(s);
  }
  const replay::MirrorStats& ps = rt.mirrors[0].replayer->stats();
  std::string req;
  uint64_t n = 0;
  const uint64_t start = base::monotonicNs();
  const uint64_t tickNs = static_cast<uint64_t>(tickUs) * 1000;
  std::optional<replay::WakeBatch> batch;  // paced: one per tick, as around a ring consume
  while (!stop.load(std::memory_order_relaxed)) {
    if (rate > 0) {
      const uint64_t now = base::monotonicNs();
      const uint64_t ticks = (now - start) / tickNs + 1;
      if (n >= static_cast<uint64_t>(static_cast<double>(ticks * tickNs) * rate / 1e9)) {
        batch.reset();
        worker.tick(now);
        const uint64_t wait = tickNs - (now - start) % tickNs;
        const timespec pause{static_cast<time_t>(wait / 1'000'000'000ULL), static_cast<long>(wait % 1'000'000'000ULL)};
        nanosleep(&pause, nullptr);
        continue;
      }
      if (!batch && wakeBatch) {
        batch.emplace();
      }
    } else if (static_cast<size_t>(base::load(ps.queueDepth)) > window) {
      const timespec pause{0, 50'000};
      nanosleep(&pause, nullptr);
      continue;
    }
    Conn& c = cs[n % conns];
    req = "GET /bench/" + std::to_string(n) + " HTTP/1.1\r\nHost: httpbin:8000\r\nUser-Agent: bench\r\n\r\n";
    c.seg.seq = c.next;
    c.seg.flags = flow::kTcpAck;
    c.seg.tsNs = base::monotonicNs();
    c.seg.payload = {reinterpret_cast<const uint8_t*>(req.data()), req.size()};
    worker.onSegment(c.seg);
    c.next += static_cast<uint32_t>(req.size());
    ++n;
    if (n % 1024 == 0) {
      worker.tick(base::monotonicNs());
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  uint32_t workers = 1;
  std::string mirror;
  double seconds = 5;
  uint32_t connections = 64;
  size_t window = 256;
  double rate = 0;
  uint32_t tickUs = 1000;
  bool wakeBatch = true;
  std::string io = "uring";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--workers") {
      workers = static_cast<uint32_t>(std::atoi(argv[i + 1]));
    } else if (k == "--mirror") {
      mirror = argv[i + 1];
    } else if (k == "--seconds") {
      seconds = std::atof(argv[i + 1]);
    } else if (k == "--connections") {
      connections = static_cast<uint32_t>(std::atoi(argv[i + 1]));
    } else if (k == "--window") {
      window = static_cast<size_t>(std::atoi(argv[i + 1]));
    } else if (k == "--rate") {
      rate = std::atof(argv[i + 1]);
    } else if (k == "--wake-batch") {
      wakeBatch = std::atoi(argv[i + 1]) != 0;
    } else if (k == "--io") {
      io = argv[i + 1];
    } else if (k == "--tick-us") {
      tickUs = static_cast<uint32_t>(std::atoi(argv[i + 1]));
    }
  }
  if (mirror.empty() || workers < 1) {
    std::fprintf(stderr, "usage: workers_bench --workers N --mirror HOST:PORT [--seconds S] [--connections C] [--window W] "
                 "[--rate R (all workers; 0: as fast as the mirror answers)] [--tick-us T] [--wake-batch 0|1] [--io uring|epoll]\n");
    return 2;
  }
  replay::ResolveResult resolved = replay::resolveTarget(mirror);
  if (!resolved.error.empty()) {
    std::fprintf(stderr, "workers_bench: %s\n", resolved.error.c_str());
    return 1;
  }
  std::string error;
  auto rule = rules::parseRule("port=8000,mirror=" + mirror, rules::RuleDefaults{}, false, &error);
  if (!rule) {
    std::fprintf(stderr, "workers_bench: %s\n", error.c_str());
    return 1;
  }
  replay::LocalEndpoints local;
  auto set = std::make_shared<RuleSet>();
  set->generation = 1;
  set->perWorker.resize(workers);
  for (uint32_t w = 0; w < workers; ++w) {
    auto rt = std::make_shared<RuleRuntime>(*rule, 1, w);
    replay::MirrorPoolOptions o;
    o.target = mirror;
    o.addrs = resolved.addrs;
    o.maxConnections = rule->first().connections;
    o.queueCapacity = rule->first().queue;
    o.queueBytes = rule->first().queueMiB << 20;
    o.localEndpoints = &local;
    o.io = io == "epoll" ? replay::MirrorIo::kEpoll : replay::MirrorIo::kUring;
    splitPoolOptions(o, workers, w, nullptr);
    rt->mirrors[0].replayer = std::make_unique<replay::MirrorPool>(o);
    if (!rt->mirrors[0].replayer->start()) {
      return 1;
    }
    set->perWorker[w].push_back(rt);
  }
  RuleSnapshot snapshot;
  snapshot.publish(set);
  std::mutex mutex;
  std::vector<std::unique_ptr<Worker>> ws;
  for (uint32_t w = 0; w < workers; ++w) {
    WorkerShared shared;
    shared.workers = workers;
    shared.rules = &snapshot;
    shared.rulesMutex = &mutex;
    shared.localEndpoints = &local;
    shared.flowLimits = splitFlowLimits(flow::FlowLimits{}, workers, w);
    ws.push_back(std::make_unique<Worker>(w, shared));
  }
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (uint32_t w = 0; w < workers; ++w) {
    const uint32_t mine = static_cast<uint32_t>(workerShare(connections, workers, w));
    threads.emplace_back([&, w, mine] {
      produce(*ws[w], *set->perWorker[w][0], w * 1000, mine, window, rate / workers, tickUs, wakeBatch, stop);
    });
  }
  std::this_thread::sleep_for(std::chrono::seconds(1));  // warm-up: connections open
  const uint64_t a0 = answered(*set);
  const double c0 = cpuSeconds();
  const uint64_t t0 = base::monotonicNs();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  const uint64_t a1 = answered(*set);
  const double c1 = cpuSeconds();
  const uint64_t t1 = base::monotonicNs();
  stop = true;
  for (auto& t : threads) {
    t.join();
  }
  uint64_t errors = 0, dropped = 0;
  for (uint32_t w = 0; w < workers; ++w) {
    RuleRuntime& rt = *set->perWorker[w][0];
    rt.mirrors[0].replayer->stop(std::chrono::milliseconds(500));
    const replay::MirrorStats& s = rt.mirrors[0].replayer->stats();
    errors += base::load(s.errorsConnect) + base::load(s.errorsReset) + base::load(s.errorsResponseTimeout) +
              base::load(s.errorsBadResponse);
    dropped += base::load(rt.mirrors[0].stats.dropped);
  }
  const double secs = static_cast<double>(t1 - t0) / 1e9;
  const double rps = static_cast<double>(a1 - a0) / secs;
  std::printf(
      "{\"workers\": %u, \"seconds\": %.2f, \"answered_per_s\": %.0f, \"per_worker_per_s\": %.0f, "
      "\"cpu_us_per_request\": %.2f, \"cpu_cores_used\": %.2f, \"mirror_errors\": %llu, \"submit_dropped\": %llu}\n",
      workers, secs, rps, rps / workers, (c1 - c0) * 1e6 / static_cast<double>(a1 - a0 ? a1 - a0 : 1),
      (c1 - c0) / secs, static_cast<unsigned long long>(errors), static_cast<unsigned long long>(dropped));
  return 0;
}
