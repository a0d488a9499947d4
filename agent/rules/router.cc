#include "rules/router.h"

#include <algorithm>

#include "h2/request_edit.h"
#include "http/host_rewrite.h"

namespace shadowtap::rules {

Router::Router(const Rule& rule)
    : suffix_(rule.suffix),
      methods_(rule.methods),
      drop_(rule.dropHeaders),
      add_(rule.headers),
      http1Edit_(rule.dropHeaders, rule.headers) {}

bool Router::allows(std::string_view method) const {
  return methods_.empty() || std::find(methods_.begin(), methods_.end(), method) != methods_.end();
}

Router::Verdict Router::classify(const model::Request& request) const {
  if (http::hostHasSuffix(request.authority(), suffix_)) {
    return Verdict::kAlreadyShadow;
  }
  return allows(request.method) ? Verdict::kMirror : Verdict::kMethodFiltered;
}

void Router::rewrite(model::Request& request) const {
  if (request.isHttp2()) {
    h2::rewriteAuthority(request, suffix_);
    h2::editFields(request, drop_, add_);
    return;
  }
  http::rewriteHostInPlace(request, suffix_);
  if (http1Edit_.changesHeaders()) {
    request.bytes = http1Edit_.apply(std::move(request.bytes));
  }
}

}  // namespace shadowtap::rules
