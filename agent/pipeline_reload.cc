#include <spdlog/spdlog.h>

#include <algorithm>

#include "pipeline.h"
#include "pipeline_metrics.h"

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
      if (engine_) {
        // A compared rule whose settings changed goes on being compared, with
        // the noise its predecessor (same port and dst) learned.
        engine_->adopt(nextId, rule.compare ? comparedPredecessor(current, rule) : 0);
      }
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
  linkSuccessors(current, out);
  return true;
}

uint32_t Pipeline::comparedPredecessor(const RuleSet& current, const rules::Rule& rule) const {
  for (const auto& old : current.perWorker.front()) {
    if (old && old->rule.compare && old->rule.port == rule.port && old->rule.dst == rule.dst &&
        engine_->compares(old->ruleId)) {
      return old->ruleId;
    }
  }
  return 0;
}

void Pipeline::linkSuccessors(const RuleSet& current, NextRules& out) {
  out.set->successors.resize(out.set->rules(), 0);
  for (size_t i = 0; i < current.rules(); ++i) {
    const auto& old = current.perWorker.front()[i];
    if (!old || out.kept[i]) {
      continue;
    }
    for (const auto& runtimes : out.added) {
      const RuleRuntime& added = *runtimes.front();
      if (added.rule.port == old->rule.port && added.rule.dst == old->rule.dst) {
        out.set->successors[i] = added.ruleId;
        break;
      }
    }
  }
}

void Pipeline::reload() {
  if (!reloadSource_) {
    spdlog::warn("SIGHUP: no configuration to reload (start with --config FILE)");
    return;
  }
  pruneRetired();
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
  // The added rules' pools first: a rule that could not send is refused with
  // the reload, before the kernel knows it.
  for (const auto& runtimes : nr.added) {
    for (const auto& rt : runtimes) {
      if (!startPools(*rt)) {
        spdlog::error("reload refused, the current rules stay: cannot start the mirror pools of rule '{}' (see "
                      "above)",
                      rt->rule.text);
        stopAdded(nr);
        return;
      }
    }
  }
  if (!installRules(nr, current)) {
    stopAdded(nr);
    return;
  }
  for (const auto& runtimes : nr.added) {
    const rules::Rule& rule = runtimes.front()->rule;
    if (rule.compare && !runtimes.front()->compared) {
      spdlog::warn("reload: rule '{}' asks for compare=true, but comparison is set up only at start (a changed "
                   "rule goes on being compared, a new one is not); it is mirrored without comparing (restart to "
                   "compare it)",
                   rule.text);
    }
    spdlog::info("rule {}: {}", runtimes.front()->ruleId, rule.describe());
  }
  size_t removed = 0;
  for (size_t i = 0; i < known; ++i) {
    if (!current->perWorker.front()[i] || nr.kept[i]) {
      continue;
    }
    // Its in-flight requests get the drain time, off the workers; a request a
    // worker still submits meanwhile is counted as dropped at shutdown.
    std::vector<std::shared_ptr<RuleRuntime>> gone;
    for (uint32_t w = 0; w < workerCount_; ++w) {
      gone.push_back(current->perWorker[w][i]);
    }
    const auto drain = std::chrono::milliseconds(config_.drainTimeoutMs);
    for (replay::MirrorPool* pool : poolsOf(gone)) {
      retiringLeft_.fetch_add(1, std::memory_order_relaxed);
      retiring_.emplace_back([this, pool, drain] {
        pool->stop(drain);
        retiringLeft_.fetch_sub(1, std::memory_order_release);
      });
    }
    {
      std::lock_guard<std::mutex> lock(rulesMutex_);
      retired_.insert(retired_.end(), gone.begin(), gone.end());
    }
    ++removed;
  }
  spdlog::info("reloaded the configuration: {} rule(s) kept, {} added, {} removed", nr.keptCount, nr.added.size(),
               removed);
}

bool Pipeline::installRules(const NextRules& nr, const std::shared_ptr<const RuleSet>& current) {
  // First a set with the added rules and the removed ones still in it, so
  // that a connection the kernel tags with an added rule's id finds its rule
  // at once, and one of a removed rule goes on until the kernel has the new
  // rules.
  const size_t known = current->rules();
  const std::shared_ptr<RuleSet>& set = nr.set;
  auto during = std::make_shared<RuleSet>(*set);
  for (uint32_t w = 0; w < workerCount_; ++w) {
    for (size_t i = 0; i < known; ++i) {
      if (!nr.kept[i]) {
        during->perWorker[w][i] = current->perWorker[w][i];
      }
    }
  }
  set->generation = during->generation + 1;
  snapshot_.publish(during);
  if (std::string why = source_->updateRules(portRules(*set)); !why.empty()) {
    spdlog::error("reload refused, the current rules stay: {}", why);
    auto back = std::make_shared<RuleSet>(*current);
    back->generation = set->generation;
    snapshot_.publish(back);
    return false;
  }
  // The workers take the new set at their next batch (or at the first request
  // of a rule they do not know yet).
  snapshot_.publish(set);
  return true;
}

std::vector<replay::MirrorPool*> Pipeline::poolsOf(const std::vector<std::shared_ptr<RuleRuntime>>& runtimes) const {
  std::vector<replay::MirrorPool*> pools;
  // A worker adds its HTTP/2 pools under the rules mutex. One added after this
  // look is stopped when its runtime is let go of (pruneRetired, ~Pipeline).
  std::lock_guard<std::mutex> lock(rulesMutex_);
  for (const auto& rt : runtimes) {
    if (!rt) {
      continue;
    }
    for (replay::MirrorPool* pool : {rt->secondary.get(), rt->h2SecondaryPool.get()}) {
      if (pool != nullptr) {
        pools.push_back(pool);
      }
    }
    for (MirrorRuntime& m : rt->mirrors) {
      for (replay::MirrorPool* pool : {m.replayer.get(), m.h2Pool.get()}) {
        if (pool != nullptr) {
          pools.push_back(pool);
        }
      }
    }
  }
  return pools;
}

void Pipeline::stopAdded(const NextRules& nr) {
  for (const auto& runtimes : nr.added) {
    for (const auto& rt : runtimes) {
      for (MirrorRuntime& m : rt->mirrors) {
        if (m.replayer) {
          m.replayer->stop(std::chrono::milliseconds(0));
        }
      }
      if (rt->secondary) {
        rt->secondary->stop(std::chrono::milliseconds(0));
      }
    }
  }
}

void Pipeline::pruneRetired() {
  if (retired_.empty() || retiringLeft_.load(std::memory_order_acquire) != 0) {
    return;  // drains still run: they hold pools of the retired runtimes
  }
  for (auto& t : retiring_) {
    t.join();
  }
  retiring_.clear();
  std::vector<std::shared_ptr<RuleRuntime>> released;  // freed outside the lock
  {
    std::lock_guard<std::mutex> lock(rulesMutex_);
    std::erase_if(retired_, [&](std::shared_ptr<RuleRuntime>& rt) {
      if (rt.use_count() != 1) {
        return false;  // a worker (or an exporter) still holds a rule set with it
      }
      // An HTTP/2 pool a worker started after the drain began stops now, so
      // that what it counted is final before it is frozen.
      for (MirrorRuntime& m : rt->mirrors) {
        if (m.h2Pool) {
          m.h2Pool->stop(std::chrono::milliseconds(0));
        }
      }
      if (rt->h2SecondaryPool) {
        rt->h2SecondaryPool->stop(std::chrono::milliseconds(0));
      }
      exportRuleCounters(*rt, removedRules_[rt->ruleId]);
      released.push_back(std::move(rt));
      return true;
    });
    while (removedRules_.size() > kRemovedRulesKept) {
      spdlog::info("reload: the counters of removed rule {} are no longer exported (more than {} rules removed)",
                   removedRules_.begin()->first, kRemovedRulesKept);
      removedRules_.erase(removedRules_.begin());
    }
  }
}

}  // namespace shadowtap
