#include "capture/tls_coverage.h"

namespace shadowtap::capture {
namespace {

// TLS record header: content type, then the 0x03 of every TLS version.
constexpr uint8_t kHandshake = 0x16;
constexpr uint8_t kApplicationData = 0x17;
constexpr uint8_t kClientHello = 0x01;

}  // namespace

void TlsCoverageStats::countServer(const std::string& server) {
  std::lock_guard lock(mutex_);
  auto it = servers_.find(server);
  if (it == servers_.end() && servers_.size() >= kMaxServers) {
    it = servers_.try_emplace("other", 0).first;
  } else if (it == servers_.end()) {
    it = servers_.emplace(server, 0).first;
  }
  ++it->second;
}

std::map<std::string, uint64_t> TlsCoverageStats::servers() const {
  std::lock_guard lock(mutex_);
  return servers_;
}

TlsCoverage::TlsCoverage(TlsCoverageStats& stats, MissedFn onMissed, uint64_t waitNs, uint64_t forgetNs,
                         size_t maxEntries)
    : stats_(stats), onMissed_(onMissed), waitNs_(waitNs), forgetNs_(forgetNs), maxEntries_(maxEntries) {}

TlsCoverage::Entry* TlsCoverage::find(const model::FlowKey& key, bool create, uint64_t nowNs) {
  auto it = entries_.find(key);
  if (it != entries_.end()) {
    return &it->second;
  }
  if (!create) {
    return nullptr;
  }
  if (entries_.size() >= maxEntries_) {
    stats_.untracked.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  Entry& e = entries_[key];
  e.firstNs = nowNs;
  return &e;
}

void TlsCoverage::observe(const flow::Segment& s) {
  if (s.fromServer) {
    return;
  }
  model::FlowKey key = s.key;
  key.source = model::FlowSource::kWire;
  if (s.key.source == model::FlowSource::kTls) {
    if (Entry* e = find(key, true, s.tsNs)) {
      e->plaintext = true;
    }
    return;
  }
  const auto& p = s.payload;
  const bool hello = p.size() >= 6 && p[0] == kHandshake && p[1] == 0x03 && p[5] == kClientHello;
  const bool appData = p.size() >= 3 && p[0] == kApplicationData && p[1] == 0x03;
  Entry* e = find(key, hello || appData, s.tsNs);
  if (!e) {
    return;
  }
  if (hello || appData) {
    e->hello = e->hello || (hello && !e->wire);
    e->wire = true;
    e->lastWireNs = s.tsNs;
  }
  if ((s.flags & (flow::kTcpFin | flow::kTcpRst)) != 0 && e->judged) {
    entries_.erase(key);
  }
}

void TlsCoverage::judge(uint64_t nowNs) {
  for (auto it = entries_.begin(); it != entries_.end();) {
    Entry& e = it->second;
    if (!e.judged && nowNs - e.firstNs >= waitNs_) {
      e.judged = true;
      if (!e.wire) {
        it = entries_.erase(it);  // plaintext only: nothing on the wire to account for
        continue;
      }
      if (e.plaintext) {
        stats_.covered.fetch_add(1, std::memory_order_relaxed);
      } else {
        const Missed why = e.hello ? Missed::kNoPlaintext : Missed::kJoinedLate;
        (why == Missed::kNoPlaintext ? stats_.noPlaintext : stats_.joinedLate).fetch_add(1, std::memory_order_relaxed);
        model::FlowKey server = it->first;
        stats_.countServer(server.toString().substr(server.toString().find("->") + 2));
        if (onMissed_) {
          onMissed_(it->first, why);
        }
      }
    }
    if (e.judged && nowNs - std::max(e.firstNs, e.lastWireNs) >= forgetNs_) {
      it = entries_.erase(it);
      continue;
    }
    ++it;
  }
}

}  // namespace shadowtap::capture
