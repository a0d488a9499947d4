#include "model/response.h"

#include <algorithm>

#include "base/strings.h"

namespace shadowtap::model {

std::string_view Response::header(std::string_view name) const {
  for (const HeaderField& h : headers) {
    if (base::equalsIgnoreCase(h.name, name)) {
      return h.value;
    }
  }
  return {};
}

bool Response::hasHeader(std::string_view name) const {
  return std::any_of(headers.begin(), headers.end(),
                     [&](const HeaderField& h) { return base::equalsIgnoreCase(h.name, name); });
}

}  // namespace shadowtap::model
