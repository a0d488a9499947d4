#include "h2/h2_request.h"

namespace shadowtap::h2 {

std::string_view H2Request::header(std::string_view name) const {
  for (const HeaderField& h : headers) {
    if (h.name == name) {
      return h.value;
    }
  }
  return {};
}

std::string_view H2Request::authority() const {
  for (const HeaderField& h : headers) {
    if (h.name == ":authority") {
      return h.value;
    }
  }
  return header("host");
}

}  // namespace shadowtap::h2
