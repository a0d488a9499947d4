#pragma once

#include <cstddef>
#include <string>
#include <optional>
#include <string_view>

#include "model/request.h"

namespace shadowtap::http {

// Capacity the framer leaves after a request's bytes, so the Host rewrite
// (takeRewrittenRequest) can insert the suffix in place without reallocating.
inline constexpr size_t kRewriteSlack = 64;

// The tag Istio/Envoy mirroring appends to the host part of a mirrored request.
inline constexpr std::string_view kDefaultShadowSuffix = "-shadow";

// Index of the ':' that starts the port in a Host/:authority value, or npos.
// Same rule as Envoy's HeaderUtility::getPortStart: the last ':' counts unless a
// ']' (end of an IPv6 literal) comes after it. An unbracketed IPv6 address is
// therefore split at its last ':' exactly as Envoy does.
size_t hostPortStart(std::string_view host);

// `host` with `suffix` inserted before the port (Envoy's shadow host rule):
// "httpbin:8000" -> "httpbin-shadow:8000", "[::1]:80" -> "[::1]-shadow:80",
// "cluster1" -> "cluster1-shadow". An empty host yields `suffix` alone.
std::string appendShadowSuffix(std::string_view host, std::string_view suffix);

// r.bytes with only the host part of the Host value changed by appendShadowSuffix,
// and, for an absolute-form target ("GET http://h:80/x"), the host inside the
// target too, so both keep naming the same host as on the primary. Every other
// byte (header order and case, whitespace, other headers, body) is unchanged.
// An HTTP/1 request without Host (hostLength == 0: HTTP/1.0, the framer emits no
// other) gets "Host: <authority with the suffix>\r\n" as its first header line,
// the authority being the target's (absolute form) or the address the request
// was sent to (destinationAuthority; none when r.flow.dport is 0), as an
// HTTP/1.1 client would have sent it; so the mirror sees the suffix, which also
// guards against mirror loops (docs/http1.md).
std::string rewriteRequestHost(const model::Request& r, std::string_view suffix);

// "198.18.0.2:8000", "[2001:db8::2]:8080", "198.18.0.2" (port 80 omitted): the
// server side of the flow, as a Host value.
std::string destinationAuthority(const model::FlowKey& key);

// The same bytes as rewriteRequestHost, made in the request's own buffer and
// moved out of it: the body is moved once within the buffer instead of copied
// into a new one (no allocation when the capacity has room for the suffix; the
// framer leaves kRewriteSlack). Afterwards r.bytes is empty and r's offsets no
// longer apply; its other fields (method, flow, ...) are untouched.
std::string takeRewrittenRequest(model::Request&& r, std::string_view suffix);
// The same rewrite, left in r.bytes (whose offsets then no longer apply).
void rewriteHostInPlace(model::Request& r, std::string_view suffix);

// True when the host part of `host` (without the port) already ends with `suffix`,
// compared ASCII case-insensitively, so a mirror that is itself captured is not
// mirrored again. An empty suffix never matches.
bool hostHasSuffix(std::string_view host, std::string_view suffix);

// `literal` as the new value of a host[:port] that was `host`: the literal's
// own port when it has one, else the original's ("staging" over "api:8000" is
// "staging:8000").
std::string literalHost(std::string_view literal, std::string_view host);

// True when `host` is what literalHost(literal, ...) gives: the same host part,
// ASCII case-insensitively, and the same port when the literal names one.
bool hostIsLiteral(std::string_view host, std::string_view literal);

// r.bytes with the Host value and an absolute-form target's host replaced by
// literalHost(literal, ...) (a request without Host, HTTP/1.0, gets a Host
// line naming the literal). Every other byte is unchanged.
std::string replaceRequestHost(const model::Request& r, std::string_view literal);

// The value of the first header field named `name` (ASCII case-insensitively)
// in the head of `bytes` (a framed HTTP/1 request), without surrounding
// blanks; nullopt when there is none.
std::optional<std::string_view> findHeader(std::string_view bytes, size_t bodyOffset, std::string_view name);

}  // namespace shadowtap::http
