#pragma once

#include <cstdint>
#include <string_view>

#include "model/request.h"
#include "record/recorded_request.h"

namespace shadowtap::record {

// An HTTP/2 request as recordings store it: httpVersion kHttp2Version, every
// header field in wire order (pseudo-headers included), trailers, never-index
// flags, the body (or its length and SHA-256 only when !keepBodies); method and
// target repeat :method and :path. Takes the request by value: the writer
// thread moves its queued copy in.
RecordedRequest fromH2Request(model::Request request, int64_t realtimeOffsetNs, bool keepBodies);

// The HTTP/2 request to send for a recorded one: the same fields in the same
// order with their never-index flags, body and trailers; :authority (and any
// host field) get `suffix` by h2::rewriteAuthority (empty: unchanged). ruleId
// is kept; tsNs, flow and exchangeId are left for the caller.
model::Request buildH2Request(const RecordedRequest& r, std::string_view suffix);

// Makes an HTTP/2 record read from a file sendable as is, for recordings of
// other tools (browser HARs): field names lower case, connection-specific
// fields (connection, keep-alive, proxy-connection, transfer-encoding,
// upgrade, te other than "trailers") dropped, pseudo-headers first, and the
// missing ones added: :method from r.method, :scheme from `urlScheme` (else
// "http"), :authority from `urlAuthority` (else a host field), :path from
// r.target (CONNECT gets neither :scheme nor :path). Then method and target
// are set from :method and :path. A shadowtap recording passes unchanged.
void normalizeH2(RecordedRequest& r, std::string_view urlScheme, std::string_view urlAuthority);

}  // namespace shadowtap::record
