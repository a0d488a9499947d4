#pragma once

#include <string_view>

#include "h2/h2_request.h"

namespace shadowtap::h2 {

// Gives the request's authority the shadow suffix by the same rule as the
// HTTP/1 Host header (http::appendShadowSuffix: before the port). Rewrites every
// ":authority" field and every "host" field, so a request that carries both
// (RFC 9113 8.3.1 wants them to agree) still names one host. Every other field,
// the field order, the never-index flags, body and trailers are unchanged.
// Empty values stay empty (as an HTTP/1 request without a Host value). Returns
// the number of fields rewritten (0: no authority, the request is unchanged).
int rewriteAuthority(H2Request& request, std::string_view suffix);

}  // namespace shadowtap::h2
