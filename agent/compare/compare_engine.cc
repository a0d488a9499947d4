#include "compare/compare_engine.h"

#include <utility>

#include "base/counters.h"

namespace shadowtap::compare {

uint64_t heldBytes(const model::Response& response) {
  uint64_t n = response.body.size();
  for (const model::HeaderField& f : response.headers) {
    n += f.name.size() + f.value.size() + model::kH2FieldOverhead;
  }
  return n;
}

CompareEngine::CompareEngine(const EngineOptions& options, std::vector<std::unique_ptr<Comparator>> comparators,
                             DiffWriter* writer)
    : options_(options), comparators_(std::move(comparators)), writer_(writer), stats_(options.maxEndpoints) {
  sinks_[0].bind(this, Part::kPrimary);
  sinks_[1].bind(this, Part::kMirror);
  sinks_[2].bind(this, Part::kSecondary);
}

CompareEngine::~CompareEngine() { stop(); }

bool CompareEngine::start() {
  std::lock_guard lock(mutex_);
  if (running_) {
    return false;
  }
  running_ = true;
  stopping_ = false;
  thread_ = std::thread([this] { run(); });
  return true;
}

void CompareEngine::stop() {
  {
    std::lock_guard lock(mutex_);
    if (!running_) {
      return;
    }
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
  std::lock_guard lock(mutex_);
  running_ = false;
}

uint32_t CompareEngine::comparatorOf(uint32_t ruleId) const {
  if (ruleId != 0 && ruleId <= comparators_.size() && comparators_[ruleId - 1]) {
    return ruleId;
  }
  const auto it = adopted_.find(ruleId);
  return it == adopted_.end() ? 0 : it->second;
}

bool CompareEngine::compares(uint32_t ruleId) const {
  std::lock_guard lock(mutex_);
  return comparatorOf(ruleId) != 0;
}

void CompareEngine::adopt(uint32_t ruleId, uint32_t predecessor) {
  std::lock_guard lock(mutex_);
  const uint32_t from = comparatorOf(predecessor);
  if (from == 0 || ruleId <= comparators_.size()) {
    adopted_.erase(ruleId);
    return;
  }
  adopted_[ruleId] = from;
}

uint64_t CompareEngine::begin(uint32_t ruleId, std::string method, std::string target, bool withSecondary,
                              uint64_t nowNs) {
  std::lock_guard lock(mutex_);
  const uint32_t comparatorId = comparatorOf(ruleId);
  if (comparatorId == 0) {
    return 0;
  }
  const uint64_t id = nextId_.fetch_add(1, std::memory_order_relaxed);
  if (pending_.size() >= options_.maxPending) {
    base::bump(stats_.refused);
    return 0;
  }
  Exchange ex;
  ex.ruleId = ruleId;
  ex.method = std::move(method);
  ex.target = std::move(target);
  ex.beganNs = nowNs;
  ex.comparatorId = comparatorId;
  ex.withSecondary = withSecondary;
  if (!withSecondary) {
    ex.state[static_cast<size_t>(Part::kSecondary)] = PartState::kMissing;
  }
  pending_.emplace(id, std::move(ex));
  base::bump(stats_.exchanges);
  base::bump(stats_.pending);
  return id;
}

void CompareEngine::onResponse(uint64_t id, Part part, model::Response&& response) {
  resolve(id, part, PartState::kHave, &response);
}

void CompareEngine::onMissing(uint64_t id, Part part) { resolve(id, part, PartState::kMissing, nullptr); }

void CompareEngine::resolve(uint64_t id, Part part, PartState state, model::Response* response) {
  std::unique_lock lock(mutex_);
  auto it = pending_.find(id);
  const size_t p = static_cast<size_t>(part);
  if (it == pending_.end() || it->second.state[p] != PartState::kWaiting) {
    base::bump(stats_.unknownParts);
    return;
  }
  Exchange& ex = it->second;
  ex.state[p] = state;
  if (response != nullptr) {
    const uint64_t bytes = heldBytes(*response);
    if (held_ + bytes > options_.maxHeldBytes) {
      ex.state[p] = PartState::kMissing;
      base::bump(stats_.overMemory);
    } else {
      held_ += bytes;
      ex.held += bytes;
      base::bump(stats_.heldBytes, bytes);
      ex.response[p] = std::move(*response);
    }
  }
  for (PartState s : ex.state) {
    if (s == PartState::kWaiting) {
      return;
    }
  }
  Exchange done = std::move(ex);
  pending_.erase(it);
  base::subtract(stats_.pending);
  if (done.state[0] != PartState::kHave || done.state[1] != PartState::kHave) {
    base::bump(done.state[0] != PartState::kHave ? stats_.noPrimary : stats_.noMirror);
    release(done);
    return;
  }
  // Once stop() began, the thread may have seen its queue empty for the last
  // time: compare here rather than queue where nothing reads.
  if (running_ && !stopping_) {
    if (queue_.size() >= options_.queueCapacity) {
      base::bump(stats_.queueFull);
      release(done);
      return;
    }
    queue_.push_back(std::move(done));
    base::bump(stats_.queued);
    lock.unlock();
    cv_.notify_one();
    return;
  }
  lock.unlock();
  compareNow(done);
  lock.lock();
  release(done);
}

void CompareEngine::release(const Exchange& ex) {
  held_ -= ex.held;
  base::subtract(stats_.heldBytes, ex.held);
}

void CompareEngine::compareNow(Exchange& ex) {
  std::lock_guard lock(compareMutex_);
  Comparator& comparator = *comparators_[ex.comparatorId - 1];
  const bool haveSecondary = ex.state[2] == PartState::kHave;
  const CompareResult result = comparator.compare(ex.method, ex.target, ex.response[0], ex.response[1],
                                                  haveSecondary ? &ex.response[2] : nullptr);
  stats_.count(ex.ruleId, result.endpoint, result.outcome);
  base::bump(stats_.compared);
  if (ex.withSecondary && !haveSecondary) {
    base::bump(stats_.noSecondary);
  }
  if (writer_ != nullptr) {
    DiffRecord rec;
    rec.ruleId = ex.ruleId;
    rec.method = ex.method;
    rec.target = ex.target;
    rec.result = &result;
    rec.primary = &ex.response[0];
    rec.mirror = &ex.response[1];
    rec.secondary = haveSecondary ? &ex.response[2] : nullptr;
    writer_->write(rec);
  }
}

void CompareEngine::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) {
      return;  // stopping, everything queued compared
    }
    Exchange ex = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    compareNow(ex);
    base::subtract(stats_.queued);
    lock.lock();
    release(ex);
  }
}

void CompareEngine::expire(uint64_t nowNs) {
  std::lock_guard lock(mutex_);
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (nowNs > it->second.beganNs && nowNs - it->second.beganNs > options_.pendingTimeoutNs) {
      base::bump(stats_.expired);
      base::subtract(stats_.pending);
      release(it->second);
      it = pending_.erase(it);
    } else {
      ++it;
    }
  }
}

std::vector<std::string> CompareEngine::noisyPaths(uint32_t ruleId, const std::string& endpoint) const {
  uint32_t from = 0;
  {
    std::lock_guard lock(mutex_);
    from = comparatorOf(ruleId);
  }
  std::lock_guard lock(compareMutex_);
  return from == 0 ? std::vector<std::string>() : comparators_[from - 1]->noisyPaths(endpoint);
}

}  // namespace shadowtap::compare
