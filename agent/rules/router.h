#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/header_edit.h"
#include "model/request.h"
#include "rules/rule.h"

namespace shadowtap::rules {

// The mirrors of a rule that take a request: bit i is rule.mirrors[i]
// (kMaxMirrorsPerRule fit).
using MirrorSet = uint32_t;

// One rule applied to one request, the same way for HTTP/1 and HTTP/2: the
// loop guard (a request that is already a shadow is never mirrored again),
// each mirror's share (its percentage, by the rule's sample mode), the method
// allow-list, then each mirror's rewrite (its host mode, the rule's header
// switches). Rule matching by port and destination and the connection sample
// of the rule's largest percentage happen in the kernel; the request arrives
// with its rule id.
//
// Several mirrors decide independently and deterministically, each with its
// own salt: sample=connection by a hash of the connection salted per mirror
// (a mirror below the rule's largest percentage takes its share of the
// connections the kernel copied), sample=request by its own low-discrepancy
// sequence, sample=header by a hash of the value salted per mirror. The first
// mirror decides as a rule with one mirror always has.
//
// Threads: classify() keeps the state of sample=request (low-discrepancy
// sequences), so each thread that routes requests owns its Router (a worker
// owns its routers); everything else is pure.
class Router {
 public:
  enum class Verdict {
    kMirror,          // goes on to the sinks of the mirrors that take it
    kAlreadyShadow,   // already a shadow (the loop guard): a mirror that is itself captured
    kSampledOut,      // in no mirror's share (sample=request|header:NAME, or several mirrors)
    kMethodFiltered,  // its method is not in the rule's allow-list
  };

  explicit Router(const Rule& rule);

  // The loop guard first, so a shadow request is never recorded either; then
  // the mirrors' samples (what no mirror takes is neither mirrored nor
  // recorded, as with connection sampling); then the methods. *taken (when
  // given) gets the mirrors whose share the request is in: every one of them
  // for kMirror, and for kMethodFiltered those that would have taken it.
  //
  // The loop guard by host mode, any mirror's: suffix: the host already ends
  // with the suffix; literal: the host is the literal; keep: the request
  // carries every header the rule adds (header=), with the same value (without
  // header=, keep mode relies on the agent declining its own mirror
  // connections). A shadow of one mirror is sent to none.
  Verdict classify(const model::Request& request, MirrorSet* taken = nullptr);
  bool allows(std::string_view method) const;
  // Whether the request is in mirror i's share.
  bool sampled(const model::Request& request, size_t mirror);

  // Makes `request` what mirror i gets: its host mode (HTTP/1: Host and an
  // absolute-form target's host, in place in the wire bytes; HTTP/2:
  // :authority and host), then drop-header and header=. Afterwards an HTTP/1
  // request's offsets no longer apply; its bytes, method, flow, times and
  // exchange id are what the mirror pool uses.
  void rewrite(model::Request& request, size_t mirror = 0) const;

  size_t mirrors() const { return mirrors_.size(); }
  // What rewrite() makes of a host value for mirror i (for the dry-run printer).
  std::string shadowHost(std::string_view host, size_t mirror = 0) const;

 private:
  // One mirror's host mode and share.
  struct MirrorRoute {
    std::string suffix;
    HostMode hostMode;
    std::string hostLiteral;
    uint64_t threshold;       // share of 2^32 taken (of the requests, header values, or all connections)
    uint64_t ofCopied;        // sample=connection: share of 2^32 of the connections the kernel copied
    uint32_t step;            // sample=request: the sequence's step
    uint32_t sequence = 0;    // sample=request: position in the sequence (2^32 scale)
    uint64_t seed;            // sample=header and connection: the hash's salt
  };

  bool isShadow(const model::Request& request, const MirrorRoute& m) const;
  bool carriesAddedHeaders(const model::Request& request) const;

  std::vector<MirrorRoute> mirrors_;
  SampleMode sampleMode_;
  std::string sampleHeader_;
  std::vector<std::string> methods_;
  std::vector<std::string> drop_;  // lower case
  std::vector<std::pair<std::string, std::string>> add_;
  http::HeaderEdit http1Edit_;
};

}  // namespace shadowtap::rules
