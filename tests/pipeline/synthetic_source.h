#pragma once

// A capture::SegmentSource for driving the real Pipeline without BPF or root:
// segments pushed from the test's thread go to a worker's feed (chosen by a
// symmetric hash of the ports, so both directions of a connection meet in one
// worker, as the kernel does), which wakes the worker through an eventfd. The
// source's counters are the capture's names with a ring reader's view:
// segments delivered are records read.
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/fd.h"
#include "capture/capture_metrics.h"
#include "capture/segment_source.h"
#include "flow/segment.h"

namespace shadowtap::testing {

class SyntheticFeed final : public capture::WorkerFeed {
 public:
  SyntheticFeed() : event_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}

  // Queues a copy of `segment` (its payload included) and wakes the worker.
  void push(const flow::Segment& segment) {
    {
      std::lock_guard lock(mutex_);
      queue_.push_back({segment, std::string(reinterpret_cast<const char*>(segment.payload.data()),
                                             segment.payload.size())});
    }
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t w = write(event_.get(), &one, sizeof(one));
  }
  size_t delivered() const { return delivered_.load(); }

  std::vector<int> readableFds() const override { return {event_.get()}; }
  int consume(capture::SegmentSink& sink) override {
    uint64_t n;
    [[maybe_unused]] ssize_t r = read(event_.get(), &n, sizeof(n));
    std::deque<Queued> batch;
    {
      std::lock_guard lock(mutex_);
      batch.swap(queue_);
    }
    for (Queued& q : batch) {
      q.segment.payload = {reinterpret_cast<const uint8_t*>(q.bytes.data()), q.bytes.size()};
      sink.onSegment(q.segment);
    }
    delivered_ += batch.size();
    return static_cast<int>(batch.size());
  }

 private:
  struct Queued {
    flow::Segment segment;
    std::string bytes;
  };
  base::Fd event_;
  std::mutex mutex_;
  std::deque<Queued> queue_;
  std::atomic<size_t> delivered_{0};
};

class SyntheticSource final : public capture::SegmentSource {
 public:
  explicit SyntheticSource(uint32_t workers) {
    for (uint32_t i = 0; i < workers; ++i) {
      feeds_.push_back(std::make_unique<SyntheticFeed>());
    }
  }

  // The worker a connection's segments go to (both directions alike).
  uint32_t workerOf(const flow::Segment& s) const {
    return static_cast<uint32_t>((s.key.sport ^ s.key.dport) % feeds_.size());
  }
  void push(const flow::Segment& s) {
    if (!detached_.load()) {
      feeds_[workerOf(s)]->push(s);
    }
  }
  size_t delivered() const {
    size_t n = 0;
    for (const auto& f : feeds_) {
      n += f->delivered();
    }
    return n;
  }
  // The rules of the last updateRules() (a reload's), by port.
  std::vector<uint16_t> ports() const {
    std::lock_guard lock(mutex_);
    return ports_;
  }

  capture::WorkerFeed& feed(uint32_t worker) override { return *feeds_.at(worker); }
  std::vector<std::string> attachedInterfaces() const override { return {"synthetic0"}; }
  std::string updateRules(const std::vector<capture::PortRule>& rules) override {
    {
      std::lock_guard lock(mutex_);
      ports_.clear();
      for (const auto& r : rules) {
        ports_.push_back(r.port);
      }
    }
    // What the kernel does next with the new rules (the test's), or a refusal.
    return onUpdate_ ? onUpdate_() : std::string();
  }
  // Runs inside the next updateRules() calls, after the rules are taken:
  // returns why they are refused (empty: taken).
  void onUpdateRules(std::function<std::string()> hook) { onUpdate_ = std::move(hook); }
  void detach() override { detached_ = true; }
  void exportStats(bool egress, base::StatsSink& out) const override {
    capture::CaptureStats stats;
    stats.records = delivered();
    capture::exportStats(capture::KernelCounters{}, stats, 1, egress, out);
  }

 private:
  std::vector<std::unique_ptr<SyntheticFeed>> feeds_;
  std::atomic<bool> detached_{false};
  mutable std::mutex mutex_;
  std::vector<uint16_t> ports_;
  std::function<std::string()> onUpdate_;
};

}  // namespace shadowtap::testing
