#pragma once

#include <string>
#include <string_view>

namespace shadowtap::compare {

// The endpoint a request belongs to, for counters and noise: the method, a
// space, and the path of the request-target with its query dropped and every
// all-digit segment replaced by {n} and every UUID segment by {uuid}:
//   ("GET", "/users/123/orders/9f0c2b1e-...?x=1") -> "GET /users/{n}/orders/{uuid}".
// Absolute-form targets lose their scheme and authority. Bounded: at most
// kMaxEndpointPath bytes of template (longer ones end in "...").
inline constexpr size_t kMaxEndpointPath = 256;
std::string endpointOf(std::string_view method, std::string_view target);

bool isUuid(std::string_view segment);

}  // namespace shadowtap::compare
