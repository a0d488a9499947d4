#pragma once

#include <cstdint>
#include <string>

namespace shadowtap::replay {

// One request to send to the mirror, already rewritten (Host carries the
// shadow suffix). `bytes` is the complete request and is sent unchanged.
struct ReplayJob {
  uint32_t ruleId = 0;
  std::string bytes;
  // The response to a HEAD request has no body even when it carries
  // Content-Length; the response framer has to be told.
  bool isHead = false;
  uint64_t capturedNs = 0;
  // Compare mode: non-zero when the response is kept (framed whole, bounded) and
  // handed to ReplayOptions::onKeptResponse under this id, or reported through
  // onMissingResponse when the job ends without one. `method` is the request's
  // method (a response to HEAD has no body).
  uint64_t exchangeId = 0;
  std::string method;
};

}  // namespace shadowtap::replay
