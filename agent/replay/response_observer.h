#pragma once

#include <cstdint>

#include "model/response.h"

namespace shadowtap::replay {

// What a mirror pool tells a side output (compare mode) about the requests it
// was given with an exchange id (model::Request::exchangeId != 0): each such
// request ends in exactly one call. onResponse gets the final response, kept
// within the pool's ResponseLimits (HTTP/1 framed with http::ResponseFramer,
// h2c from the stream's fields and DATA); onMissing says the request ended any
// other way (dropped, refused, reset, timed out, unreadable response).
//
// Called on the pool's loop thread, on a submitting thread for requests that
// submit() drops, and on the thread calling stop() for requests left at the
// end. Must not block and must not call back into the pool.
class ResponseObserver {
 public:
  virtual ~ResponseObserver() = default;
  virtual void onResponse(uint64_t exchangeId, model::Response&& response) = 0;
  virtual void onMissing(uint64_t exchangeId) = 0;
};

}  // namespace shadowtap::replay
