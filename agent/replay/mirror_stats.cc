#include "replay/mirror_stats.h"

namespace shadowtap::replay {

const char* describe(Outcome outcome) {
  switch (outcome) {
    case Outcome::kResponse:
      return "response";
    case Outcome::kConnectError:
      return "connect failed";
    case Outcome::kConnectTimeout:
      return "connect timed out";
    case Outcome::kReset:
      return "reset before the response was complete";
    case Outcome::kConnectionError:
      return "connection failed under the request";
    case Outcome::kResponseTimeout:
      return "response timed out";
    case Outcome::kBadResponse:
      return "response is not valid HTTP/1.x";
    case Outcome::kResponseTooLarge:
      return "response larger than the limit";
    case Outcome::kRejected:
      return "rejected by nghttp2";
    case Outcome::kQueueFull:
      return "queue full";
    case Outcome::kDroppedOldest:
      return "dropped for a newer request";
    case Outcome::kRateLimited:
      return "beyond max-rps";
    case Outcome::kDroppedShutdown:
      return "dropped at shutdown";
    case Outcome::kAbortedGap:
      return "streamed request aborted: a capture gap in its body";
    case Outcome::kAbortedCapture:
      return "streamed request aborted: the client's body did not complete";
    case Outcome::kAbortedWindow:
      return "streamed request aborted: the mirror fell a window behind";
  }
  return "?";
}

std::atomic<uint64_t>& MirrorStats::counterOf(Outcome outcome) {
  switch (outcome) {
    case Outcome::kResponse:
      return responses;
    case Outcome::kConnectError:
      return errorsConnect;
    case Outcome::kConnectTimeout:
      return errorsConnectTimeout;
    case Outcome::kReset:
      return errorsReset;
    case Outcome::kConnectionError:
      return errorsConnection;
    case Outcome::kResponseTimeout:
      return errorsResponseTimeout;
    case Outcome::kBadResponse:
      return errorsBadResponse;
    case Outcome::kResponseTooLarge:
      return errorsResponseTooLarge;
    case Outcome::kRejected:
      return errorsRejected;
    case Outcome::kQueueFull:
      return queueFull;
    case Outcome::kDroppedOldest:
      return droppedOldest;
    case Outcome::kRateLimited:
      return droppedRateLimit;
    case Outcome::kDroppedShutdown:
      return droppedShutdown;
    case Outcome::kAbortedGap:
      return abortedGap;
    case Outcome::kAbortedCapture:
      return abortedCapture;
    case Outcome::kAbortedWindow:
      return abortedWindow;
  }
  return droppedShutdown;  // unreachable: every enumerator is handled above
}

uint64_t MirrorStats::errors() const {
  uint64_t n = 0;
  for (const auto* c : {&errorsConnect, &errorsConnectTimeout, &errorsReset, &errorsConnection, &errorsResponseTimeout,
                        &errorsBadResponse, &errorsResponseTooLarge, &errorsRejected}) {
    n += c->load(std::memory_order_relaxed);
  }
  return n;
}

uint64_t MirrorStats::aborted() const {
  return abortedGap.load(std::memory_order_relaxed) + abortedCapture.load(std::memory_order_relaxed) +
         abortedWindow.load(std::memory_order_relaxed);
}

uint64_t MirrorStats::outcomes() const {
  uint64_t n = responses.load(std::memory_order_relaxed) + errors() + aborted();
  for (const auto* c : {&queueFull, &droppedOldest, &droppedRateLimit, &droppedShutdown}) {
    n += c->load(std::memory_order_relaxed);
  }
  return n;
}

}  // namespace shadowtap::replay
