#include "replay/target_resolver.h"

#include <spdlog/spdlog.h>

#include <system_error>

#include "base/counters.h"
#include "base/rate_limited_log.h"

namespace shadowtap::replay {

TargetResolver::TargetResolver(std::string target, Resolve resolve, MirrorStats& stats, std::function<void()> wake)
    : target_(std::move(target)),
      resolve_(resolve ? std::move(resolve) : Resolve(resolveTarget)),
      stats_(stats),
      wake_(std::move(wake)) {}

TargetResolver::~TargetResolver() { stop(); }

bool TargetResolver::start() {
  try {
    thread_ = std::thread([this] { run(); });
  } catch (const std::system_error& e) {
    spdlog::warn("mirror pool: cannot start the resolver thread for {} ({}); its addresses stay as resolved at start",
                 target_, e.what());
    return false;
  }
  return true;
}

void TargetResolver::stop() {
  if (!thread_.joinable()) {
    return;
  }
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void TargetResolver::request() {
  {
    std::lock_guard lock(mutex_);
    if (requested_) {
      return;
    }
    requested_ = true;
  }
  cv_.notify_all();
}

std::optional<std::vector<sockaddr_storage>> TargetResolver::take() {
  std::lock_guard lock(mutex_);
  hasResult_.store(false, std::memory_order_relaxed);
  return std::exchange(result_, std::nullopt);
}

void TargetResolver::run() {
  base::RateLimitedLog failLog(std::chrono::seconds(60));
  std::unique_lock lock(mutex_);
  for (;;) {
    cv_.wait(lock, [this] { return stop_ || requested_; });
    if (stop_) {
      return;
    }
    lock.unlock();
    ResolveResult result = resolve_(target_);
    base::bump(stats_.resolves);
    lock.lock();
    requested_ = false;
    if (!result.error.empty() || result.addrs.empty()) {
      base::bump(stats_.resolveErrors);
      uint64_t suppressed = 0;
      if (failLog.allow(std::chrono::steady_clock::now(), suppressed)) {
        spdlog::warn("mirror pool: re-resolving {} failed, keeping its last addresses: {} ({} similar suppressed)",
                     target_, result.error.empty() ? "no address" : result.error, suppressed);
      }
      continue;
    }
    base::bump(stats_.resolvesOk);
    result_ = std::move(result.addrs);
    hasResult_.store(true, std::memory_order_release);
    wake_();
  }
}

}  // namespace shadowtap::replay
