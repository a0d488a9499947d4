#pragma once

#include <sys/socket.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "replay/mirror_stats.h"
#include "replay/target.h"

namespace shadowtap::replay {

// Re-resolves a mirror's name on a thread of its own, because resolving blocks
// (getaddrinfo) and the pool's loop must not. The loop decides when (it asks
// with request() on its clock); a successful, non-empty answer is kept for the
// loop to take() and `wake` is called so it does; a failed or empty one is
// counted (resolveErrors), logged at most once a minute, and the last
// addresses stay in use.
class TargetResolver {
 public:
  using Resolve = std::function<ResolveResult(const std::string& hostPort)>;

  TargetResolver(std::string target, Resolve resolve, MirrorStats& stats, std::function<void()> wake);
  ~TargetResolver();
  TargetResolver(const TargetResolver&) = delete;
  TargetResolver& operator=(const TargetResolver&) = delete;

  // False (logged) when the thread cannot be started.
  bool start();
  // Joins the thread; a resolution in progress finishes first. Idempotent.
  void stop();

  // Asks for one resolution; no-op while one is asked for or running.
  void request();
  bool hasResult() const { return hasResult_.load(std::memory_order_acquire); }
  std::optional<std::vector<sockaddr_storage>> take();

 private:
  void run();

  const std::string target_;
  const Resolve resolve_;
  MirrorStats& stats_;
  const std::function<void()> wake_;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;       // guarded by mutex_
  bool requested_ = false;  // guarded by mutex_
  std::optional<std::vector<sockaddr_storage>> result_;  // guarded by mutex_
  std::atomic<bool> hasResult_{false};
};

}  // namespace shadowtap::replay
