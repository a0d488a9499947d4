#include "h2/preface.h"

#include <algorithm>
#include <cstring>

namespace shadowtap::h2 {

PrefaceMatch matchPreface(std::span<const uint8_t> bytes) {
  const size_t n = std::min(bytes.size(), kClientPreface.size());
  if (n == 0) {
    return PrefaceMatch::kNeedMore;
  }
  if (std::memcmp(bytes.data(), kClientPreface.data(), n) != 0) {
    return PrefaceMatch::kNo;
  }
  return n == kClientPreface.size() ? PrefaceMatch::kYes : PrefaceMatch::kNeedMore;
}

}  // namespace shadowtap::h2
