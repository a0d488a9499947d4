#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>

#include "flow/segment.h"
#include "model/flow_key.h"

namespace shadowtap::capture {

// --tls coverage, shared by the rings' trackers and read by the metrics: TLS
// connections seen on the wire (a ClientHello, or TLS application data of a
// connection first seen mid-stream) whose plaintext never arrived from the
// uprobes, by reason and by server ("ADDR:PORT", the first kMaxServers named,
// the rest under "other").
struct TlsCoverageStats {
  // ClientHello seen, no SSL_set_fd of a probed libssl: the server's TLS is
  // not the probed library (statically linked: Go's crypto/tls, BoringSSL in
  // Envoy, Node's bundled OpenSSL; or another libssl file).
  std::atomic<uint64_t> noPlaintext{0};
  // Application data of a connection first seen mid-stream: established
  // before the probes were attached, so its SSL_set_fd was missed.
  std::atomic<uint64_t> joinedLate{0};
  std::atomic<uint64_t> covered{0};    // seen on the wire and followed by the probes
  std::atomic<uint64_t> untracked{0};  // not judged: the tracker's table was full

  static constexpr size_t kMaxServers = 32;
  void countServer(const std::string& server);
  std::map<std::string, uint64_t> servers() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, uint64_t> servers_;
};

// One ring's tracker (a connection's records, wire and TLS, all reach one
// ring). observe() every to-server record; judge() from time to time: a TLS
// connection on the wire is judged once `waitNs` have passed since it was
// first seen: covered if plaintext of its 4-tuple came meanwhile, else missed
// (counted, and `onMissed` names it). Entries are forgotten `forgetNs` after
// their last wire segment or at the wire's FIN/RST once judged. Holds at most
// `maxEntries`; more are counted as untracked. Single-threaded.
class TlsCoverage {
 public:
  enum class Missed { kNoPlaintext, kJoinedLate };
  using MissedFn = void (*)(const model::FlowKey& key, Missed why);

  TlsCoverage(TlsCoverageStats& stats, MissedFn onMissed, uint64_t waitNs = 3'000'000'000ULL,
              uint64_t forgetNs = 120'000'000'000ULL, size_t maxEntries = 65536);

  void observe(const flow::Segment& s);
  void judge(uint64_t nowNs);
  size_t entries() const { return entries_.size(); }

 private:
  struct Entry {
    uint64_t firstNs = 0;
    uint64_t lastWireNs = 0;
    bool wire = false;       // TLS seen on the wire
    bool hello = false;      // ... starting with a ClientHello
    bool plaintext = false;  // a TLS-source record of the 4-tuple came
    bool judged = false;
  };
  Entry* find(const model::FlowKey& key, bool create, uint64_t nowNs);

  TlsCoverageStats& stats_;
  MissedFn onMissed_;
  uint64_t waitNs_;
  uint64_t forgetNs_;
  size_t maxEntries_;
  std::unordered_map<model::FlowKey, Entry, model::FlowKeyHash> entries_;
};

}  // namespace shadowtap::capture
