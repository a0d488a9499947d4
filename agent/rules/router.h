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
// loop guard (a host already carrying the suffix is never mirrored again), the
// method allow-list, then the rewrite (host suffix, header switches). Rule
// matching by port and destination and connection sampling happen in the
// kernel; the request arrives with its rule id. Pure; safe to share between
// threads.
class Router {
 public:
  enum class Verdict {
    kMirror,          // goes on to the rule's sinks
    kAlreadyShadow,   // its host already carries the suffix: a mirror that is itself captured
    kMethodFiltered,  // its method is not in the rule's allow-list
  };

  explicit Router(const Rule& rule);

  // The loop guard first, so a shadow request is never recorded either.
  Verdict classify(const model::Request& request) const;
  bool allows(std::string_view method) const;

  // Makes `request` what the mirror gets: the suffix on the host (HTTP/1: Host
  // and an absolute-form target's host, in place in the wire bytes; HTTP/2:
  // :authority and host), then drop-header and header=. Afterwards an HTTP/1
  // request's offsets no longer apply; its bytes, method, flow, times and
  // exchange id are what the mirror pool uses.
  void rewrite(model::Request& request) const;

  const std::string& suffix() const { return suffix_; }

 private:
  std::string suffix_;
  std::vector<std::string> methods_;
  std::vector<std::string> drop_;  // lower case
  std::vector<std::pair<std::string, std::string>> add_;
  http::HeaderEdit http1Edit_;
};

}  // namespace shadowtap::rules
