#include "h2/authority_rewrite.h"

#include "http/host_rewrite.h"

namespace shadowtap::h2 {

int rewriteAuthority(H2Request& request, std::string_view suffix) {
  int rewritten = 0;
  for (HeaderField& h : request.headers) {
    if ((h.name == ":authority" || h.name == "host") && !h.value.empty()) {
      h.value = http::appendShadowSuffix(h.value, suffix);
      ++rewritten;
    }
  }
  return rewritten;
}

}  // namespace shadowtap::h2
