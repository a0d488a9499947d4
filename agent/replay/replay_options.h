#pragma once

#include <sys/socket.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/drop_policy.h"

#include "compare/compare_engine.h"
#include "model/response.h"
#include "http/response_framer.h"

namespace shadowtap::replay {

class LocalEndpoints;

using base::DropPolicy;

struct ReplayOptions {
  // "host:port" as configured; names the target in logs and is re-resolved
  // every resolveInterval (0: never) off the loop, on the replayer's own
  // resolver thread. A failed or empty resolution keeps the last addresses.
  std::string target;
  std::chrono::milliseconds resolveInterval{0};
  // Mirror addresses (from resolveTarget); new connections use them in turn.
  std::vector<sockaddr_storage> addrs;
  // Keep-alive pool size. One request in flight per connection (no pipelining).
  size_t maxConnections = 16;
  // Jobs waiting for a connection, by count and by bytes; beyond either, submit drops.
  size_t queueCapacity = 4096;
  size_t queueBytes = 64 << 20;
  // kNewest: submit drops when the queue is full (queueFull). kOldest: the loop
  // moves queued jobs to its own backlog of the same limits and drops the
  // oldest there (droppedOldest); memory is then up to twice the limits.
  DropPolicy dropPolicy = DropPolicy::kNewest;
  // Requests per second admitted by submit (0: unlimited), with bursts of up
  // to a tenth of a second's worth (at least one); the excess is dropped and
  // counted as droppedRateLimit.
  uint32_t maxRps = 0;
  // Where our sockets' local endpoints are published (may be null).
  LocalEndpoints* localEndpoints = nullptr;
  std::chrono::milliseconds connectTimeout{1000};
  // From the first byte written until the final response is complete.
  std::chrono::milliseconds responseTimeout{5000};
  // An unused keep-alive connection is closed after this long.
  std::chrono::milliseconds idleTimeout{60000};
  // Bytes read per response (head and body) before the connection is closed
  // and the job counted as errorsResponseTooLarge.
  size_t maxResponseBytes = 16 << 20;
  // After a failed connect to an address, no new connect to it for a backoff
  // that starts here and doubles up to the maximum; reset by a successful connect.
  std::chrono::milliseconds backoffInitial{100};
  std::chrono::milliseconds backoffMax{5000};

  // Compare mode. A job with exchangeId != 0 keeps its response: it is framed
  // (http::ResponseFramer, with responseLimits: the body is kept up to
  // maxBodyBytes and hashed whole) and handed to onKeptResponse; a job that ends
  // any other way (error, timeout, drop, shutdown; also a response the framer
  // could not read) is reported to onMissingResponse instead. So each such job
  // ends in exactly one call, with `comparePart` (the pipeline makes one
  // Replayer per target: kMirror, kSecondary). Called on the replay loop
  // thread, or on the submitting thread for jobs submit() drops; they must not
  // block. Unset callbacks: jobs are replayed as usual and nothing is reported.
  compare::Part comparePart = compare::Part::kMirror;
  std::function<void(uint64_t exchangeId, compare::Part part, model::Response&& response)> onKeptResponse;
  std::function<void(uint64_t exchangeId, compare::Part part)> onMissingResponse;
  http::ResponseLimits responseLimits;
};

}  // namespace shadowtap::replay
