#include "pipeline.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "http/host_rewrite.h"
#include "shadowtap/capture_abi.h"

namespace shadowtap {
namespace {

constexpr uint32_t kRuleId = 1;
constexpr uint64_t kTickNs = 100'000'000;  // expiry and housekeeping every 100 ms

uint64_t monotonicNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

uint64_t load(const std::atomic<uint64_t>& v) { return v.load(std::memory_order_relaxed); }

// Closes a file descriptor when it goes out of scope.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) {
      close(fd_);
    }
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

Pipeline::Pipeline(const Config& config) : config_(config) {}

Pipeline::~Pipeline() {
  // Detach first so the kernel stops copying, then let the stages go in order.
  if (capture_) {
    capture_->detach();
  }
}

std::unique_ptr<Pipeline> Pipeline::create(const Config& config, std::string* error) {
  auto p = std::unique_ptr<Pipeline>(new Pipeline(config));

  replay::ResolveResult resolved = replay::resolveTarget(config.mirror);
  if (!resolved.error.empty()) {
    *error = resolved.error;
    return nullptr;
  }
  replay::ReplayOptions ro;
  ro.addrs = resolved.addrs;
  ro.maxConnections = config.mirrorConnections;
  ro.queueCapacity = config.mirrorQueue;
  ro.queueBytes = config.mirrorQueueMiB << 20;
  ro.connectTimeout = std::chrono::milliseconds(config.connectTimeoutMs);
  ro.responseTimeout = std::chrono::milliseconds(config.responseTimeoutMs);
  p->replayer_ = std::make_unique<replay::Replayer>(ro);

  http::FramerLimits fl;
  fl.maxRequestBytes = config.maxRequestMiB << 20;
  p->framers_ = std::make_unique<http::RequestFramerFactory>(*p, fl);

  flow::FlowLimits limits;
  limits.maxFlows = config.maxFlows;
  limits.maxFlowBufferBytes = config.maxFlowBufferMiB << 20;
  limits.maxTotalBufferBytes = config.maxTotalBufferMiB << 20;
  limits.idleTimeoutNs = uint64_t(config.idleTimeoutSec) * 1'000'000'000ULL;
  limits.gapTimeoutNs = uint64_t(config.gapTimeoutMs) * 1'000'000ULL;
  p->flows_ = std::make_unique<flow::FlowTable>(limits, *p->framers_);

  capture::CaptureOptions co;
  co.interfaces = config.interfaces;
  co.rules.push_back({config.port, kRuleId, config.sampleBasisPoints()});
  co.ringBufferBytes = config.ringBufferMiB << 20;
  co.tcPriority = config.tcPriority;
  if (getrandom(&co.hashSeed, sizeof(co.hashSeed), 0) != sizeof(co.hashSeed)) {
    co.hashSeed = static_cast<uint32_t>(monotonicNs());
  }
  p->capture_ = capture::Capture::open(co, error);
  if (!p->capture_) {
    return nullptr;
  }
  if (!p->replayer_->start()) {
    *error = "cannot start the replay event loop (see the log above)";
    return nullptr;
  }
  spdlog::info("mirroring TCP port {} on {} to {} ({}% of connections, host suffix '{}')", config.port,
               fmt::join(config.interfaces, ","), config.mirror, config.mirrorPercentage,
               config.shadowSuffix);
  return p;
}

void Pipeline::onSegment(const flow::Segment& segment) { flows_->ingest(segment); }

void Pipeline::onRequest(http::Request&& request) {
  stats_.requests.fetch_add(1, std::memory_order_relaxed);
  if (http::hostHasSuffix(request.host(), config_.shadowSuffix)) {
    stats_.loopSkipped.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  replay::ReplayJob job;
  job.ruleId = request.ruleId;
  job.isHead = request.method == "HEAD";
  job.capturedNs = request.tsNs;
  job.bytes = http::rewriteRequestHost(request, config_.shadowSuffix);
  if (replayer_->submit(std::move(job))) {
    stats_.queued.fetch_add(1, std::memory_order_relaxed);
  } else {
    stats_.queueFull.fetch_add(1, std::memory_order_relaxed);
  }
}

int Pipeline::run() {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  Fd sfd(signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC));
  Fd tfd(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  Fd ep(epoll_create1(EPOLL_CLOEXEC));
  if (sfd.get() < 0 || tfd.get() < 0 || ep.get() < 0) {
    spdlog::error("cannot set up the event loop: {}", std::strerror(errno));
    return 1;
  }
  itimerspec its{};
  its.it_interval.tv_nsec = static_cast<long>(kTickNs);
  its.it_value.tv_nsec = static_cast<long>(kTickNs);
  timerfd_settime(tfd.get(), 0, &its, nullptr);

  const int ringFd = capture_->fd();
  for (int fd : {ringFd, sfd.get(), tfd.get()}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (epoll_ctl(ep.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
      spdlog::error("cannot set up the event loop: {}", std::strerror(errno));
      return 1;
    }
  }

  const uint64_t summaryEveryNs = uint64_t(config_.summaryIntervalSec) * 1'000'000'000ULL;
  uint64_t nextSummary = monotonicNs() + summaryEveryNs;
  bool stopping = false;
  while (!stopping) {
    epoll_event events[4];
    int n = epoll_wait(ep.get(), events, 4, -1);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      spdlog::error("epoll_wait: {}", std::strerror(errno));
      return 1;
    }
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == ringFd) {
        capture_->consume(*this);
      } else if (fd == tfd.get()) {
        uint64_t expirations;
        [[maybe_unused]] ssize_t r = read(tfd.get(), &expirations, sizeof(expirations));
        uint64_t now = monotonicNs();
        flows_->expire(now);
        if (summaryEveryNs != 0 && now >= nextSummary) {
          spdlog::info("{}", summary());
          nextSummary = now + summaryEveryNs;
        }
      } else if (fd == sfd.get()) {
        signalfd_siginfo si{};
        if (read(sfd.get(), &si, sizeof(si)) == sizeof(si)) {
          spdlog::info("received {}, stopping", strsignal(static_cast<int>(si.ssi_signo)));
          stopping = true;
        }
      }
    }
  }

  // Stop the kernel side first, take what is already in the ring, then end the
  // streams and give the mirror its drain time.
  capture_->detach();
  capture_->consume(*this);
  flows_->shutdown();
  replayer_->stop(std::chrono::milliseconds(config_.drainTimeoutMs));
  spdlog::info("final: {}", summary());
  return 0;
}

std::string Pipeline::summary() const {
  const capture::KernelCounters k = capture_->kernelCounters();
  const auto& cs = capture_->stats();
  const auto& fs = flows_->stats();
  const auto& hs = framers_->stats();
  const auto& rs = replayer_->stats();
  return fmt::format(
      "kernel seen={} matched={} sampled_out={} copied={} ringbuf_full={} truncated={} malformed={} | "
      "records={} bad_records={} | flows active={} created={} midstream={} gaps={} gap_bytes={} evicted={} | "
      "http requests={} parse_errors={} no_host={} too_large={} dropped_by_gap={} unmirrored_bytes={} "
      "skipped_upgrade={} skipped_http2={} skipped_tls={} | loop_skipped={} queue_full={} | "
      "mirror queued={} responses={} errors={} dropped_shutdown={}",
      k[ST_CNT_SEEN], k[ST_CNT_MATCHED], k[ST_CNT_SAMPLED_OUT], k[ST_CNT_COPIED],
      k[ST_CNT_RINGBUF_FULL], k[ST_CNT_TRUNCATED], k[ST_CNT_MALFORMED], load(cs.records),
      load(cs.badRecords), flows_->flowCount(), load(fs.flowsCreated), load(fs.flowsMidstream),
      load(fs.gaps), load(fs.gapBytes), load(fs.flowsEvicted), load(hs.requestsParsed),
      load(hs.parseErrors), load(hs.noHost), load(hs.tooLarge), load(hs.droppedByGap),
      load(hs.unmirroredBytes), load(hs.upgrade), load(hs.http2), load(hs.tls),
      load(stats_.loopSkipped), load(stats_.queueFull), load(stats_.queued), load(rs.responses),
      rs.errors(),
      load(rs.droppedShutdown));
}

}  // namespace shadowtap
