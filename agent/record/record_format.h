#pragma once

#include <string>

#include "record/recorded_request.h"

namespace shadowtap::record {

// JSON lines: one object per line, no newline inside:
//   {"time":"2024-05-01T12:00:00.001500Z","flow":"198.18.0.1:40000->198.18.0.2:8000","rule":1,
//    "method":"POST","target":"/p?q=1","version":"HTTP/1.1",
//    "headers":[["Host","httpbin:8000"],["Content-Length","5"]],
//    "body_length":5,"body_sha256":"2cf2...","body":"hello","body_encoding":"text"}
// "body"/"body_encoding" ("text": valid UTF-8 as is; "base64") are absent when
// bodies are not kept; "wire_body" (base64) holds a chunked body as framed.
// HTTP/2 requests: "version":"HTTP/2", "headers" holds every field in wire
// order, pseudo-headers first (method and target repeat :method and :path),
// "trailers" the trailing fields as [name, value] pairs, and
// "headers_never_index"/"trailers_never_index" (only when not empty) the
// indices of the fields sent never-indexed:
//   {...,"method":"POST","target":"/pkg.Svc/Call","version":"HTTP/2",
//    "headers":[[":method","POST"],[":scheme","http"],[":authority","svc:50051"],
//               [":path","/pkg.Svc/Call"],["te","trailers"]],
//    "trailers":[["x-checksum","1"]],"body_length":7,...}
std::string toJsonLine(const RecordedRequest& r);

// HAR 1.2. A file is harFileHead(), then one entry per line, the first as is
// and every later one preceded by ',' (so lines are ",{...}"), then
// harFileTail(). A file cut by a crash lacks the tail line "]}}" and may end in
// a partial entry line.
// HTTP/2 entries: httpVersion "HTTP/2", url from :scheme (default http),
// :authority and :path, headers = every field in wire order with the
// pseudo-headers (as Chrome's HAR), "_neverIndex": true on a field sent
// never-indexed, request "_trailers" (the same {name, value} objects),
// headersSize -1.
std::string harFileHead();
std::string harEntry(const RecordedRequest& r);
std::string harFileTail();

}  // namespace shadowtap::record
