#include "h2/request_edit.h"

#include <algorithm>

#include "base/strings.h"
#include "http/host_rewrite.h"

namespace shadowtap::h2 {

int rewriteAuthority(model::Request& request, std::string_view suffix) {
  int rewritten = 0;
  for (model::HeaderField& h : request.headers) {
    if ((h.name == ":authority" || h.name == "host") && !h.value.empty()) {
      h.value = http::appendShadowSuffix(h.value, suffix);
      ++rewritten;
    }
  }
  return rewritten;
}

int replaceAuthority(model::Request& request, std::string_view literal) {
  int rewritten = 0;
  for (model::HeaderField& h : request.headers) {
    if ((h.name == ":authority" || h.name == "host") && !h.value.empty()) {
      h.value = http::literalHost(literal, h.value);
      ++rewritten;
    }
  }
  return rewritten;
}

void editFields(model::Request& request, const std::vector<std::string>& drop,
                const std::vector<std::pair<std::string, std::string>>& add) {
  if (!drop.empty()) {
    std::erase_if(request.headers, [&drop](const model::HeaderField& f) {
      return std::find(drop.begin(), drop.end(), f.name) != drop.end();
    });
  }
  for (const auto& [name, value] : add) {
    request.headers.push_back({base::toLower(name), value, false});
  }
}

}  // namespace shadowtap::h2
