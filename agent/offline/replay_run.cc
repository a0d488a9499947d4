#include "offline/replay_run.h"

#include <algorithm>

#include "record/h2_record.h"

namespace shadowtap::offline {

std::string_view targetPath(std::string_view t) {
  if (!t.starts_with("/")) {
    const size_t scheme = t.find("://");
    if (scheme == std::string_view::npos) {
      return t;  // "*" or authority-form
    }
    const size_t slash = t.find('/', scheme + 3);
    t = slash == std::string_view::npos ? std::string_view("/") : t.substr(slash);
  }
  return t.substr(0, t.find_first_of("?#"));
}

bool RequestFilter::matches(const record::RecordedRequest& r) const {
  if (!methods.empty() && std::find(methods.begin(), methods.end(), r.method) == methods.end()) {
    return false;
  }
  if (pathPrefixes.empty()) {
    return true;
  }
  const std::string_view path = targetPath(r.target);
  return std::any_of(pathPrefixes.begin(), pathPrefixes.end(),
                     [&](const std::string& p) { return path.starts_with(p); });
}

void runPlan(const ReplayPlan& plan, replay::MirrorSink& sink, Clock& clock, const std::atomic<bool>& stop,
             const std::function<bool()>& busy, const std::function<void()>& tick, RunCounters& counters,
             uint64_t tickNs) {
  runPlan(plan, sink, nullptr, clock, stop, busy, tick, counters, tickNs);
}

void runPlan(const ReplayPlan& plan, replay::MirrorSink& sink, replay::MirrorSink* h2Sink, Clock& clock,
             const std::atomic<bool>& stop, const std::function<bool()>& busy, const std::function<void()>& tick,
             RunCounters& counters, uint64_t tickNs) {
  Pacer pacer(plan.speed, plan.maxRps);
  // Waits until `until` in steps of tickNs, calling tick; false when stopped.
  auto waitUntil = [&](uint64_t until) {
    while (!stop.load(std::memory_order_relaxed)) {
      const uint64_t now = clock.nowNs();
      if (now >= until) {
        return true;
      }
      clock.sleepUntilNs(std::min(until, now + tickNs));
      if (tick) {
        tick();
      }
    }
    return false;
  };
  for (uint64_t pass = 0; plan.passes == 0 || pass < plan.passes; ++pass) {
    if (plan.requests.empty()) {
      break;
    }
    pacer.startPass(clock.nowNs());
    for (const auto& r : plan.requests) {
      if (!waitUntil(pacer.due(r.unixNs))) {
        return;
      }
      if (plan.speed == 0 && busy) {
        while (busy()) {
          if (!waitUntil(clock.nowNs() + 1'000'000)) {
            return;
          }
        }
      }
      const uint64_t now = clock.nowNs();
      counters.submitted.fetch_add(1, std::memory_order_relaxed);
      bool accepted = false;
      if (r.isHttp2()) {
        counters.h2Submitted.fetch_add(1, std::memory_order_relaxed);
        if (h2Sink != nullptr) {
          model::Request h2req = record::buildH2Request(r, plan.suffix);
          h2req.tsNs = now;
          accepted = h2Sink->submit(std::move(h2req));
        }
      } else {
        model::Request request;
        request.ruleId = r.ruleId;
        request.method = r.method;
        request.tsNs = now;
        request.bytes = record::buildRequestBytes(r, plan.suffix);
        accepted = sink.submit(std::move(request));
      }
      if (!accepted) {
        counters.refused.fetch_add(1, std::memory_order_relaxed);
      }
      pacer.sent(now);
      if (tick) {
        tick();
      }
    }
    counters.passes.fetch_add(1, std::memory_order_relaxed);
  }
}

}  // namespace shadowtap::offline
