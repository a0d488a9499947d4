#pragma once

// Responses for the tests of the response framer (http/), the HTTP/2 response
// decoder (h2/) and compare mode (compare/).

#include <atomic>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/strings.h"
#include "http/response_framer.h"
#include "model/response.h"

namespace shadowtap::test {

inline std::span<const uint8_t> asBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

inline uint64_t load(const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); }

struct CollectingSink : http::ResponseSink {
  void onResponse(uint64_t id, model::Response&& r) override { responses.emplace_back(id, std::move(r)); }
  void onNoResponse(uint64_t id, http::NoResponse reason) override { missing.emplace_back(id, reason); }
  std::vector<std::pair<uint64_t, model::Response>> responses;
  std::vector<std::pair<uint64_t, http::NoResponse>> missing;
};

inline model::Response makeResponse(int status, std::vector<model::HeaderField> headers, std::string body) {
  model::Response r;
  r.status = status;
  r.headers = std::move(headers);
  r.bodyLength = body.size();
  r.bodyHash = base::fnv1a64(body);
  r.body = std::move(body);
  return r;
}

inline model::Response jsonResponse(int status, std::string body) {
  const std::string length = std::to_string(body.size());
  return makeResponse(status, {{"Content-Type", "application/json"}, {"Content-Length", length}}, std::move(body));
}

}  // namespace shadowtap::test
