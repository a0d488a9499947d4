#pragma once

#include <string_view>

namespace shadowtap::http {

// True when `body` is exactly a chunked body whose every line ends in CRLF:
// 1*HEXDIG [chunk-ext] CRLF data CRLF ... "0" [chunk-ext] CRLF *(trailer CRLF) CRLF.
// llhttp frames the body first; outside strict mode it takes CR followed by any
// byte as a line end in chunk framing, which a strict server would frame
// differently. Costs one short scan per chunk line, not per body byte.
bool isWellFormedChunkedBody(std::string_view body);

}  // namespace shadowtap::http
