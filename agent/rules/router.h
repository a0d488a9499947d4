#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/header_edit.h"
#include "model/request.h"
#include "rules/rule.h"

namespace shadowtap::rules {

// One rule applied to one request, the same way for HTTP/1 and HTTP/2: the
// loop guard (a request that is already a shadow is never mirrored again), the
// per-request sample (sample=request|header:NAME), the method allow-list, then
// the rewrite (host mode, header switches). Rule matching by port and
// destination and connection sampling happen in the kernel; the request arrives
// with its rule id.
//
// Threads: classify() keeps the state of sample=request (a low-discrepancy
// sequence), so each thread that routes requests owns its Router (a worker
// owns its routers); everything else is pure.
class Router {
 public:
  enum class Verdict {
    kMirror,          // goes on to the rule's sinks
    kAlreadyShadow,   // already a shadow (the loop guard): a mirror that is itself captured
    kSampledOut,      // not in the rule's share of requests (sample=request|header:NAME)
    kMethodFiltered,  // its method is not in the rule's allow-list
  };

  explicit Router(const Rule& rule);

  // The loop guard first, so a shadow request is never recorded either; then
  // the sample (what is sampled out is neither mirrored nor recorded, as with
  // connection sampling); then the methods.
  //
  // The loop guard by host mode: suffix: the host already ends with the
  // suffix; literal: the host is the literal; keep: the request carries every
  // header the rule adds (header=), with the same value (without header=, keep
  // mode relies on the agent declining its own mirror connections).
  Verdict classify(const model::Request& request);
  bool allows(std::string_view method) const;
  // sample=request|header:NAME: whether this request is in the share.
  bool sampled(const model::Request& request);

  // Makes `request` what the mirror gets: the suffix on the host (HTTP/1: Host
  // and an absolute-form target's host, in place in the wire bytes; HTTP/2:
  // :authority and host), then drop-header and header=. Afterwards an HTTP/1
  // request's offsets no longer apply; its bytes, method, flow, times and
  // exchange id are what the mirror pool uses.
  void rewrite(model::Request& request) const;

  const std::string& suffix() const { return suffix_; }
  // What rewrite() makes of a host value (for the dry-run printer).
  std::string shadowHost(std::string_view host) const;

 private:
  bool isShadow(const model::Request& request) const;
  bool carriesAddedHeaders(const model::Request& request) const;

  std::string suffix_;
  HostMode hostMode_;
  std::string hostLiteral_;
  SampleMode sampleMode_;
  std::string sampleHeader_;
  uint64_t sampleThreshold_;  // share of 2^32 taken
  uint32_t sequence_ = 0;     // sample=request: position in the golden-ratio sequence (2^32 scale)
  std::vector<std::string> methods_;
  std::vector<std::string> drop_;  // lower case
  std::vector<std::pair<std::string, std::string>> add_;
  http::HeaderEdit http1Edit_;
};

}  // namespace shadowtap::rules
