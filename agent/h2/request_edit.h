#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "model/request.h"

namespace shadowtap::h2 {

// Gives the request's authority the shadow suffix by the same rule as the
// HTTP/1 Host header (http::appendShadowSuffix: before the port). Rewrites every
// ":authority" field and every "host" field, so a request that carries both
// (RFC 9113 8.3.1 wants them to agree) still names one host. Every other field,
// the field order, the never-index flags, body and trailers are unchanged.
// Empty values stay empty (as an HTTP/1 request without a Host value). Returns
// the number of fields rewritten (0: no authority, the request is unchanged).
int rewriteAuthority(model::Request& request, std::string_view suffix);

// host=LITERAL on an HTTP/2 request: every non-empty ":authority" and "host"
// field becomes http::literalHost(literal, value) (the port kept unless the
// literal names one). Returns the number of fields rewritten.
int replaceAuthority(model::Request& request, std::string_view literal);

// A rule's header switches on an HTTP/2 request: every field named in `drop`
// (lower case; pseudo-headers are never named by a rule) is removed, then `add`
// is appended after the request's own fields, with the lowercase names HTTP/2
// requires. Trailers are left alone.
void editFields(model::Request& request, const std::vector<std::string>& drop,
                const std::vector<std::pair<std::string, std::string>>& add);

}  // namespace shadowtap::h2
