#include <spdlog/spdlog.h>

#include <algorithm>

#include "pipeline.h"

// SIGHUP: the rules of the re-read configuration replace the running ones,
// off the workers (pipeline.h).
namespace shadowtap {

bool Pipeline::nextRules(const Config& next, const RuleSet& current, NextRules& out, std::string* error) {
  const size_t known = current.rules();
  // A rule that is the same in every setting keeps its id, its replayers and
  // its mirror connections; anything else is a new rule (its names resolved
  // here, off the workers).
  out.set = std::make_shared<RuleSet>(current);
  out.set->generation = current.generation + 1;
  for (auto& mine : out.set->perWorker) {
    std::fill(mine.begin(), mine.end(), nullptr);
  }
  out.kept.assign(known, false);
  uint32_t nextId = static_cast<uint32_t>(known) + 1;
  for (const rules::Rule& rule : next.rules) {
    bool found = false;
    for (size_t i = 0; i < known && !found; ++i) {
      const auto& old = current.perWorker.front()[i];
      if (old && !out.kept[i] && old->rule.sameAs(rule)) {
        out.kept[i] = true;
        ++out.keptCount;
        for (uint32_t w = 0; w < workerCount_; ++w) {
          out.set->perWorker[w][i] = current.perWorker[w][i];
        }
        found = true;
      }
    }
    if (!found) {
      auto runtimes = makeRuntimes(rule, nextId++, error);
      if (runtimes.empty()) {
        return false;
      }
      for (uint32_t w = 0; w < workerCount_; ++w) {
        out.set->perWorker[w].push_back(runtimes[w]);
      }
      out.added.push_back(std::move(runtimes));
    }
  }
  return true;
}

void Pipeline::reload() {
  if (!reloadSource_) {
    spdlog::warn("SIGHUP: no configuration to reload (start with --config FILE)");
    return;
  }
  std::string error;
  std::optional<Config> next = reloadSource_(&error);
  if (!next) {
    spdlog::error("reload refused, the current rules stay: {}", error);
    return;
  }
  if (next->workers != config_.workers) {
    spdlog::warn("reload: --workers changes only with a restart; {} worker(s) go on", workerCount_);
  }
  const std::shared_ptr<const RuleSet> current = snapshot_.load();
  const size_t known = current->rules();
  NextRules nr;
  if (!nextRules(*next, *current, nr, &error)) {
    spdlog::error("reload refused, the current rules stay: {}", error);
    return;
  }
  const std::shared_ptr<RuleSet>& set = nr.set;
  const std::vector<bool>& kept = nr.kept;
  const auto& added = nr.added;
  if (std::string why = source_->updateRules(portRules(*set)); !why.empty()) {
    spdlog::error("reload refused, the current rules stay: {}", why);
    return;
  }
  for (const auto& runtimes : added) {
    for (const auto& rt : runtimes) {
      if (!startPools(*rt)) {
        spdlog::error("reload: cannot start the replay loop of rule '{}'", rt->rule.text);
      }
    }
    const rules::Rule& rule = runtimes.front()->rule;
    if (rule.compare && !engine_) {
      spdlog::warn("reload: rule '{}' asks for compare=true, but comparison is set up only at start; it is "
                   "mirrored without comparing", rule.text);
    }
    spdlog::info("rule {}: {}", runtimes.front()->ruleId, rule.describe());
  }
  // The workers take the new set at their next batch (or at the first request
  // of a rule they do not know yet).
  snapshot_.publish(set);
  size_t removed = 0;
  for (size_t i = 0; i < known; ++i) {
    if (!current->perWorker.front()[i] || kept[i]) {
      continue;
    }
    // Its in-flight requests get the drain time, off the workers; a request a
    // worker still submits meanwhile is counted as dropped at shutdown.
    std::vector<std::shared_ptr<RuleRuntime>> gone;
    for (uint32_t w = 0; w < workerCount_; ++w) {
      gone.push_back(current->perWorker[w][i]);
      retired_.push_back(current->perWorker[w][i]);
    }
    stopPools(gone, retiring_);
    ++removed;
  }
  spdlog::info("reloaded the configuration: {} rule(s) kept, {} added, {} removed", nr.keptCount, added.size(),
               removed);
}

void Pipeline::stopPools(const std::vector<std::shared_ptr<RuleRuntime>>& runtimes,
                         std::vector<std::thread>& stoppers) {
  const auto drain = std::chrono::milliseconds(config_.drainTimeoutMs);
  for (const auto& rt : runtimes) {
    if (!rt) {
      continue;
    }
    std::vector<replay::MirrorPool*> pools = {rt->secondary.get()};
    for (MirrorRuntime& m : rt->mirrors) {
      pools.push_back(m.replayer.get());
    }
    {
      // A worker adds its HTTP/2 pools under the rules mutex. One added after
      // this look stops when its runtime goes (without drain time).
      std::lock_guard<std::mutex> lock(rulesMutex_);
      pools.push_back(rt->h2SecondaryPool.get());
      for (MirrorRuntime& m : rt->mirrors) {
        pools.push_back(m.h2Pool.get());
      }
    }
    for (replay::MirrorPool* pool : pools) {
      if (pool != nullptr) {
        stoppers.emplace_back([pool, drain] { pool->stop(drain); });
      }
    }
  }
}

}  // namespace shadowtap
