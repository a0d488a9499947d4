#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "capture/capture.h"
#include "config.h"
#include "flow/flow_table.h"
#include "http/request.h"
#include "http/request_framer.h"
#include "replay/replayer.h"

namespace shadowtap {

// Request-level outcomes decided between framing and the replay queue.
struct PipelineStats {
  std::atomic<uint64_t> requests{0};      // complete requests out of the framer
  std::atomic<uint64_t> loopSkipped{0};   // host already carried the suffix: never mirrored twice
  std::atomic<uint64_t> queued{0};        // handed to the replayer
  std::atomic<uint64_t> queueFull{0};     // replay queue full: dropped
};

// The one place that wires the stages: capture -> flow -> http -> rewrite -> replay.
// Runs the capture side on the calling thread; the replayer has its own.
class Pipeline : public capture::SegmentSink, public http::RequestSink {
 public:
  // Builds every stage and attaches. nullptr and *error set on failure.
  static std::unique_ptr<Pipeline> create(const Config& config, std::string* error);
  ~Pipeline() override;

  // Runs until SIGINT/SIGTERM (which the caller has blocked in every thread).
  // Returns the process exit code.
  int run();

  void onSegment(const flow::Segment& segment) override;
  void onRequest(http::Request&& request) override;

  // One line with every counter that matters, for the periodic and final log.
  std::string summary() const;

 private:
  explicit Pipeline(const Config& config);

  Config config_;
  std::unique_ptr<replay::Replayer> replayer_;
  std::unique_ptr<http::RequestFramerFactory> framers_;
  std::unique_ptr<flow::FlowTable> flows_;
  std::unique_ptr<capture::Capture> capture_;
  PipelineStats stats_;
};

}  // namespace shadowtap
