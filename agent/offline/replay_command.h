#pragma once

#include <cstdint>
#include <string>

#include "replay/mirror_stats.h"

namespace shadowtap::offline {

// `shadowtap replay FILE... --mirror host:port [options]`: sends recorded
// requests (HAR or JSON lines, see record_reader.h) to a target with the live
// mirror's Host rewrite and a replay::MirrorPool (pool, queue, timeouts,
// outcome counters); HTTP/2 records go over a second one of h2c connections (prior knowledge,
// :authority gets the suffix), each record with its own protocol. argv[0] is "replay" (main passes argc - 1, argv + 1). Prints
// progress (\r updates on a terminal, a plain line every 5 s otherwise) and a
// summary table on stdout; returns 0 when done (also after SIGINT/SIGTERM,
// which end the replay early), non-zero after one line on stderr for bad
// files or flags.
int runReplayCommand(int argc, char** argv);

// What the summary needs besides the replayer's counters.
struct ReplaySummary {
  uint64_t files = 0;
  uint64_t requestsRead = 0;
  uint64_t http2Read = 0;      // of requestsRead, HTTP/2 records
  uint64_t malformed = 0;      // unreadable records, skipped
  uint64_t cutFiles = 0;       // files cut by a crash (HAR, JSON lines), read up to their last record
  uint64_t filtered = 0;       // not matching --method / --path-prefix
  uint64_t noBody = 0;         // recorded without their body: cannot be rebuilt
  uint64_t passes = 0;
  uint64_t submitted = 0;
  double seconds = 0;
  bool interrupted = false;
};

// The final table (several lines, each "  label  value"); with `h2` (the
// replay used an HTTP/2 pool) an HTTP/2 section follows the HTTP/1 one.
std::string formatSummary(const ReplaySummary& s, const replay::MirrorStats& r,
                          const replay::MirrorStats* h2 = nullptr);
// One progress line without line end: rate, sent, outcomes (HTTP/1 and
// HTTP/2 added up).
std::string formatProgress(uint64_t submitted, uint64_t total, double seconds, const replay::MirrorStats& r,
                           const replay::MirrorStats* h2 = nullptr);

}  // namespace shadowtap::offline
