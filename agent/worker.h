#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>

#include "base/fd.h"
#include "capture/segment_sink.h"
#include "capture/segment_source.h"
#include "compare/compare_engine.h"
#include "compare/pool_observer.h"
#include "compare/response_pairing.h"
#include "flow/flow_table.h"
#include "h2/protocol_sniffer.h"
#include "http/request_framer.h"
#include "model/request.h"
#include "record/record_writer.h"
#include "replay/local_endpoints.h"
#include "rule_runtime.h"

namespace shadowtap {

// What every worker shares, owned by the pipeline: read-mostly (the rules
// snapshot, the local endpoints) or safe from any thread (the compare engine,
// the recorder's hand-off queue).
struct WorkerShared {
  uint32_t workers = 1;
  RuleSnapshot* rules = nullptr;
  // Held while a worker adds a rule's HTTP/2 pool (once per rule and worker)
  // and while exporters and reloads look at the pools; never per request.
  std::mutex* rulesMutex = nullptr;
  replay::LocalEndpoints* localEndpoints = nullptr;
  compare::CompareEngine* engine = nullptr;  // null when no rule compares
  compare::PoolObserver* mirrorObserver = nullptr;
  compare::PoolObserver* secondaryObserver = nullptr;
  record::RecordWriter* recorder = nullptr;  // --record; null when off
  http::FramerLimits framerLimits;
  h2::H2DecoderLimits h2Limits;
  flow::FlowLimits flowLimits;  // this worker's share (splitFlowLimits)
};

// One worker: owns the flows of the connections the kernel sends to its ring
// buffer (both directions of each), and everything per connection: the flow
// tables, the own-traffic filter, the protocol sniffers with the HTTP/1
// framers and HTTP/2 decoders, compare mode's response pairing, and through
// the rules snapshot its own routers and mirror pools. Its thread reads its
// ring and takes no lock per request; counters are its own, summed at scrape.
class Worker final : public capture::SegmentSink, public model::RequestSink {
 public:
  Worker(uint32_t index, const WorkerShared& shared);
  ~Worker() override;
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Starts the thread that waits on `feed` (a ring buffer's records and poll
  // timer, or a synthetic feed) and on a 100 ms tick for expiry. False
  // (logged) when it cannot.
  bool start(capture::WorkerFeed& feed);
  // Ends the thread: it reads what is still in its ring (the caller detached
  // the capture first), ends every stream, and exits; joined here. Idempotent.
  void stop();

  // The stages, for the worker's thread (or a test driving it without one).
  void onSegment(const flow::Segment& segment) override;
  // Every decoded request, HTTP/1 or HTTP/2: the rule's router, then the
  // recorder, the dry-run printer or the rule's mirror (and compare).
  void onRequest(model::Request&& request) override;
  // Expiry of idle flows and unanswered pairings; takes a reload's rules.
  void tick(uint64_t nowNs);
  // Ends every stream (at exit, after the last records).
  void shutdownFlows();

  uint32_t index() const { return index_; }
  const PipelineStats& stats() const { return stats_; }
  const flow::FlowTable& flows() const { return *flows_; }
  const http::RequestFramerFactory& framers() const { return sniffers_->framers(); }
  const h2::H2StreamDecoderFactory& h2Decoders() const { return sniffers_->decoders(); }
  const h2::SnifferStats& sniffing() const { return sniffers_->stats(); }
  const compare::ResponsePairing* responsePairing() const { return pairing_.get(); }
  const flow::FlowTable* responseFlows() const { return responseFlows_.get(); }
  // When the worker's loop last turned and last read its ring (CLOCK_MONOTONIC ns).
  uint64_t lastLoopTurnNs() const { return loopTurnNs_.load(std::memory_order_relaxed); }
  uint64_t lastConsumeNs() const { return consumeNs_.load(std::memory_order_relaxed); }

 private:
  // Declines flows that are our own connections to a mirror (a mirror on the
  // same node and port as the primary), so they are never reassembled.
  class OwnTrafficFilter : public flow::StreamConsumerFactory {
   public:
    OwnTrafficFilter(flow::StreamConsumerFactory& inner, replay::LocalEndpoints::View& endpoints,
                     std::atomic<uint64_t>& declined)
        : inner_(inner), endpoints_(endpoints), declined_(declined) {}
    std::unique_ptr<flow::StreamConsumer> create(const model::FlowKey& key, uint32_t ruleId,
                                                 bool fromStart) override;

   private:
    flow::StreamConsumerFactory& inner_;
    replay::LocalEndpoints::View& endpoints_;
    std::atomic<uint64_t>& declined_;
  };

  // The loop's epoll set (the feed's fds, the tick timer, the stop event).
  bool setUpLoop(capture::WorkerFeed& feed);
  void run(capture::WorkerFeed& feed);
  // Picks up a reload's rules (at each batch, and for a rule id not yet known).
  void refreshRules();
  RuleRuntime* findRule(uint32_t ruleId);
  // The HTTP/2 pool to the rule's mirror `mirror` (kMirror) or to its
  // secondary (kSecondary), started on first use; null when it cannot be started.
  replay::MirrorPool* h2PoolFor(RuleRuntime& rt, size_t mirror, compare::Part part);
  // Begins the exchange of a request of a compared rule and registers it for
  // pairing; its id, or 0 when it is not compared.
  uint64_t beginCompared(RuleRuntime& rt, const model::Request& request);
  // `request` to the rule's mirror `mirror`: its rewrite, then its pool.
  void sendHttp1(RuleRuntime& rt, size_t mirror, model::Request&& request);
  void sendHttp2(RuleRuntime& rt, size_t mirror, model::Request&& request);
  // --dry-run: the line of a request, listing the mirrors in `taken`.
  void printDryRun(RuleRuntime& rt, rules::MirrorSet taken, const model::Request& request);

  const uint32_t index_;
  const WorkerShared shared_;
  // The agent's own mirror sockets, this thread's copy (no lock per lookup).
  replay::LocalEndpoints::View local_;
  PipelineStats stats_;
  std::shared_ptr<const RuleSet> rules_;
  uint64_t generation_ = 0;
  std::unique_ptr<h2::ProtocolSnifferFactory> sniffers_;
  std::unique_ptr<OwnTrafficFilter> ownTraffic_;
  std::unique_ptr<flow::FlowTable> flows_;
  // Compare mode: the primary's responses, reassembled per connection and
  // paired with the requests by order.
  std::unique_ptr<compare::ResponsePairing> pairing_;
  std::unique_ptr<flow::FlowTable> responseFlows_;
  base::Fd stopFd_;
  base::Fd timerFd_;
  base::Fd epollFd_;
  std::thread thread_;
  std::atomic<uint64_t> loopTurnNs_{0};
  std::atomic<uint64_t> consumeNs_{0};
};

}  // namespace shadowtap
