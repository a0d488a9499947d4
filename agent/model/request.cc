#include "model/request.h"

namespace shadowtap::model {

std::string_view Request::header(std::string_view name) const {
  for (const HeaderField& h : headers) {
    if (h.name == name) {
      return h.value;
    }
  }
  return {};
}

void Request::finishHttp2() {
  protocol = Protocol::kHttp2;
  method = std::string(header(":method"));
  bodyLength = body.size();
}

std::string_view Request::authority() const {
  if (!isHttp2()) {
    return std::string_view(bytes).substr(hostOffset, hostLength);
  }
  if (std::string_view a = header(":authority"); !a.empty()) {
    return a;
  }
  return header("host");
}

std::string_view Request::target() const {
  if (!isHttp2()) {
    return std::string_view(bytes).substr(targetOffset, targetLength);
  }
  return header(":path");
}

uint64_t Request::size() const {
  if (!isHttp2()) {
    return bytes.size();
  }
  uint64_t n = body.size();
  for (const auto* fields : {&headers, &trailers}) {
    for (const HeaderField& f : *fields) {
      n += f.name.size() + f.value.size() + 4;  // "name: value\r\n"
    }
  }
  return n;
}

}  // namespace shadowtap::model
