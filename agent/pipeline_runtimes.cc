#include <spdlog/spdlog.h>

#include "pipeline.h"
#include "pipeline_options.h"
#include "worker_share.h"
#ifdef SHADOWTAP_HAVE_DRY_RUN
#include "record/dry_run_writer.h"
#endif

// Each rule's runtime in every worker: its mirrors' pools (one resolution of
// each name, each worker's share of each mirror's limits), the dry-run
// printer, compare mode's secondary (pipeline.h).
namespace shadowtap {

namespace {

// tls=true: the TLS client to `peer` (tlsPeer()), a mirror's or the
// secondary's. nullptr and *error (naming the rule and `what`) on failure.
std::shared_ptr<const replay::TlsClientConfig> tlsClientOf(const rules::Rule& rule, const char* what, bool verify,
                                                           const std::string& ca, const std::string& peer,
                                                           std::string* error) {
  auto tls = replay::TlsClientConfig::make(verify, ca, peer, error);
  if (!tls) {
    *error = "rule '" + rule.text + "': " + what + *error;
  }
  return tls;
}

// One limiter for a target's pools of one kind in every worker, so max-rps is
// the target's total whatever the number of workers (null: unlimited, or one
// worker, whose pool keeps its own).
std::shared_ptr<replay::RateLimiter> sharedRate(uint32_t maxRps, uint32_t workers) {
  return maxRps != 0 && workers > 1 ? std::make_shared<replay::RateLimiter>(maxRps) : nullptr;
}

}  // namespace

// A mirror's pool options, whole (splitPoolOptions gives each worker its share).
std::vector<std::shared_ptr<RuleRuntime>> Pipeline::makeRuntimes(const rules::Rule& rule, uint32_t ruleId,
                                                                  std::string* error) {
  std::vector<std::shared_ptr<RuleRuntime>> out;
  for (uint32_t w = 0; w < workerCount_; ++w) {
    out.push_back(std::make_shared<RuleRuntime>(rule, ruleId, w));
  }
  if (config_.dryRun) {
#ifdef SHADOWTAP_HAVE_DRY_RUN
    for (auto& rt : out) {
      const rules::Router* router = &rt->router;
      rt->dryRun = std::make_unique<record::DryRunWriter>(
          stdout, [router](std::string_view host) { return router->shadowHost(host); });
    }
    return out;
#else
    *error = "--dry-run is not available in this build";
    return {};
#endif
  }
  if (!rule.hasMirror()) {
    return out;  // --record only: captured and recorded, sent nowhere
  }
  // Compare mode, with the first mirror: its (and the secondary's) responses
  // are kept and go to the engine. A rule added by a reload has no comparator
  // (the engine's are made at start): it is mirrored only (reload() warns).
  const bool compared = engine_ && rule.compare && engine_->compares(ruleId);
  for (size_t i = 0; i < rule.mirrors.size(); ++i) {
    if (!makeMirrorPools(rule, i, compared && i == 0, out, error)) {
      return {};
    }
  }
  if (!compared || rule.secondary.empty()) {
    for (auto& rt : out) {
      rt->compared = compared;
    }
    return out;
  }
  replay::ResolveResult second = replay::resolveTarget(rule.secondary);
  if (!second.error.empty()) {
    *error = "rule '" + rule.text + "': secondary: " + second.error;
    return {};
  }
  std::shared_ptr<const replay::TlsClientConfig> secondaryTls;
  if (rule.secondaryTls) {
    secondaryTls = tlsClientOf(rule, "secondary: ", rule.secondaryTlsVerify, rule.secondaryTlsCa,
                               replay::tlsPeer("", rule.secondary), error);
    if (!secondaryTls) {
      return {};
    }
  } else if (rule.first().tls) {
    spdlog::warn("rule '{}': the secondary {} is sent to in cleartext (tls=true is the mirror's; give "
                 "secondary={};tls=true for TLS to the secondary)",
                 rule.text, rule.secondary, rule.secondary);
  }
  const auto secondaryRate = sharedRate(rule.first().maxRps, workerCount_);
  const auto h2SecondaryRate = sharedRate(rule.first().maxRps, workerCount_);
  for (auto& rt : out) {
    rt->compared = true;
    replay::MirrorPoolOptions so = rt->mirrors.front().replayer->options();  // the first mirror's share
    so.target = rule.secondary;
    so.addrs = second.addrs;
    so.tls = secondaryTls;  // its own keys: the mirror's tls= keys are the mirror's
    so.observer = secondaryObserver_.get();
    so.sharedRate = secondaryRate;
    rt->secondary = std::make_unique<replay::MirrorPool>(so);
    rt->secondaryAddrs = second.addrs;
    rt->h2SecondaryRate = h2SecondaryRate;
  }
  return out;
}

bool Pipeline::makeMirrorPools(const rules::Rule& rule, size_t mirror, bool compared,
                               std::vector<std::shared_ptr<RuleRuntime>>& runtimes, std::string* error) {
  const rules::MirrorSpec& m = rule.mirrors[mirror];
  replay::ResolveResult resolved = replay::resolveTarget(m.target);
  if (!resolved.error.empty()) {
    *error = "rule '" + rule.text + "': " + (rule.mirrors.size() > 1 ? "mirror " + m.target + ": " : "") +
             resolved.error;
    return false;
  }
  replay::MirrorPoolOptions ro = poolOptionsOf(config_, m, resolved.addrs);
  ro.localEndpoints = &localEndpoints_;
  if (m.tls && !(ro.tls = tlsClientOf(rule, "", m.tlsVerify, m.tlsCa,
                                       replay::tlsPeer(m.hostMode == rules::HostMode::kLiteral ? m.hostLiteral : "",
                                                       m.target),
                                       error))) {
    return false;
  }
  if (compared) {
    ro.observer = mirrorObserver_.get();
  }
  const auto rate = sharedRate(m.maxRps, workerCount_);
  const auto h2Rate = sharedRate(m.maxRps, workerCount_);
  for (auto& rt : runtimes) {
    MirrorRuntime& mine = rt->mirrors[mirror];
    replay::MirrorPoolOptions o = ro;
    splitPoolOptions(o, workerCount_, rt->worker, rate);
    mine.addrs = resolved.addrs;
    mine.h2Rate = h2Rate;
    mine.replayer = std::make_unique<replay::MirrorPool>(o);
  }
  return true;
}

bool Pipeline::startPools(RuleRuntime& rt) {
  for (MirrorRuntime& m : rt.mirrors) {
    if (m.replayer && !m.replayer->start()) {
      return false;
    }
  }
  return !rt.secondary || rt.secondary->start();
}

}  // namespace shadowtap
