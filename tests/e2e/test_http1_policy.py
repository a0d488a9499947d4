#!/usr/bin/env python3
"""End-to-end: the HTTP/1 framing policy (issue 17, docs/http1.md) against a real
nginx primary. Every case is sent whole and one byte per TCP segment, on its own
connection, followed by a pipelined canary request.

--part policy: the issue's cases. Refused: nginx refuses it too, and nothing of
  that connection reaches the mirror. Served: nginx answers both requests, the
  mirror gets both, byte for byte as rewritten. The counters of each decision.
--part differential: a corpus of hostile and odd requests (CL/TE combinations,
  duplicate Content-Length, obs-fold, spaces before the colon, NUL, bare CR/LF
  variants, chunk-size oddities, pipelining, methods, versions, Host). Fails on
  any request the mirror receives that nginx did not accept as the same request:
  same request line, Host, bytes consumed ($request_length) and decoded body.
  What the mirror received is recorded as raw bytes (raw_mirror.py).

  cli (198.18.0.1) --veth-- node (198.18.0.2; nginx :8000; shadowtap)
                            node (198.18.1.1) --veth-- mir (198.18.1.2; raw mirror :8000)

Usage: test_http1_policy.py --shadowtap PATH --part policy|differential
"""
import argparse
import collections
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netlab  # noqa: E402
from harness import check, finish, wait_stable  # noqa: E402
from nginx_lab import (DESTINATION, SUFFIX, NginxLab, as_primary_saw, authority_span, head_lines,  # noqa: E402
                       split_port, strip_eol)

def policy_counter(stats, name):
    """The count behind one of the policy's counter names (docs/http1.md), from the stats dump."""
    if name.startswith("refused_"):
        return stats.value("shadowtap_http_connections_abandoned_total", reason=name[len("refused_"):])
    if name.startswith("tolerated_"):
        return stats.value("shadowtap_http_requests_tolerated_total", variation=name[len("tolerated_"):])
    if name == "closed_after_refused":
        return stats.value("shadowtap_http_connections_closed_total", reason="refused_request")
    raise ValueError(name)


CANARY = b"GET /{t}/canary HTTP/1.1\r\nHost: app:8000\r\nX-Case: {t}-canary\r\n\r\n"

# The cases: (name, request, decision, summary counter it counts under,
# the bytes after which shadowtap has decided: nginx may close the connection
# before a client sending byte by byte has sent the rest).
POLICY = [
    ("bare_cr_in_header_section",
     b"POST /{t} HTTP/1.1\r\nHost: app\r\nX-Case: {t}\r\nx:\rTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     "refuse", "refused_bare_cr", b"x:\rTr"),
    ("asterisk_form_m_search",
     b"M-SEARCH * HTTP/1.1\r\nHost: app\r\nX-Case: {t}\r\nMan: \"ssdp:discover\"\r\nMX: 1\r\n\r\n",
     "refuse", "refused_asterisk_form", b"M-SEARCH * "),
    ("te_gzip_then_chunked",
     b"POST /{t} HTTP/1.1\r\nHost: app\r\nX-Case: {t}\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
     "refuse", "refused_transfer_coding", b"\r\n\r\n"),
    ("te_deflate_and_chunked_fields",
     b"POST /{t} HTTP/1.1\r\nHost: app\r\nX-Case: {t}\r\nTransfer-Encoding: deflate\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     "refuse", "refused_transfer_coding", b"\r\n\r\n"),
    ("bare_lf_line_ends",
     b"POST /{t} HTTP/1.1\nHost: app:8000\nX-Case: {t}\nContent-Length: 5\n\nhello",
     "serve", "tolerated_bare_lf", None),
    ("http10_without_host",
     b"GET /{t} HTTP/1.0\r\nX-Case: {t}\r\nConnection: keep-alive\r\n\r\n",
     "serve", "tolerated_http10_without_host", None),
    ("query_method",
     b"QUERY /{t} HTTP/1.1\r\nHost: app\r\nX-Case: {t}\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\nselect 1;",
     "serve", "tolerated_extension_method", None),
    ("extension_method",
     b"FOO-BAR_BAZ /{t} HTTP/1.1\r\nHost: app\r\nX-Case: {t}\r\n\r\n",
     "serve", "tolerated_extension_method", None),
    ("te_name_nginx_ignores",
     b"POST /{t} HTTP/1.1\r\nHost: app\r\nX-Case: {t}\r\nTransfer-Encoding@: chunked\r\nContent-Length: 3\r\n\r\nabc",
     "serve", "tolerated_ignored_header_name", None),
    ("te_name_nginx_ignores_high_byte",
     b"POST /{t} HTTP/1.1\r\nHost: app\r\nX-Case: {t}\r\nTransfer-Encoding\x80: chunked\r\nContent-Length: 3\r\n\r\nabc",
     "serve", "tolerated_ignored_header_name", None),
    ("te_underscore_name",
     b"POST /{t} HTTP/1.1\r\nHost: app\r\nX-Case: {t}\r\nTransfer_Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc",
     "serve", None, None),
    ("absolute_form",
     b"GET http://app:8000/{t}?q=1 HTTP/1.1\r\nHost: app:8000\r\nX-Case: {t}\r\n\r\n",
     "serve", None, None),
]


def shadowed(request: bytes) -> bytes:
    """The bytes the mirror must get: the suffix before the port of the Host
    value's host and of an absolute-form target's host; an HTTP/1.0 request
    without Host gets "Host: <its target's authority, else 198.18.0.2:8000>" with the
    suffix as its first field. Written from docs/http1.md, not from shadowtap."""
    lines, body_at = head_lines(request)
    tail = request[len(b"".join(lines)):]  # the blank line and the body
    method, target, version = strip_eol(lines[0]).split()
    span = authority_span(target)
    if span:
        name, port = split_port(target[span[0]:span[1]])
        lines[0] = lines[0].replace(target, target[:span[0]] + name + SUFFIX + port + target[span[1]:], 1)
    hosts = [i for i, l in enumerate(lines[1:], 1) if strip_eol(l).partition(b":")[0].lower() == b"host"]
    if hosts:
        line = lines[hosts[0]]
        value = strip_eol(line).partition(b":")[2].strip(b" \t")
        name, port = split_port(value)
        lines[hosts[0]] = line.replace(value, name + SUFFIX + port, 1)
    else:
        name, port = split_port(target[span[0]:span[1]] if span else DESTINATION)
        lines.insert(1, b"Host: " + name + SUFFIX + port + b"\r\n")
    return b"".join(lines) + tail


def tokens(name, bytewise):
    return f"{name.replace('_', '-')}-{'b' if bytewise else 'w'}".encode()


def run_policy(m, st):
    cases = []
    for name, req, _, _, _ in POLICY:
        for bw in (False, True):
            t = tokens(name, bw)
            cases.append((t.decode(), req.replace(b"{t}", t) + CANARY.replace(b"{t}", t), bw))
    statuses = m.send(cases)
    wait_stable(m.mirror_rec, quiet=2.0, timeout=60)
    got = m.mirror_got()
    st.stop()
    stats = st.stats()
    expected_counts = collections.Counter()
    for name, req, decision, counter, decided_after in POLICY:
        for bw in (False, True):
            t = tokens(name, bw)
            mode = "byte by byte" if bw else "whole"
            request = req.replace(b"{t}", t)
            canary = CANARY.replace(b"{t}", t)
            ours = [r for r in got if b"X-Case: " + t in r]
            s, sent = statuses[t.decode()]
            if decision == "refuse":
                check(bool(s) and s[0] >= 400 and len(s) == 1,
                      f"{name} ({mode}): nginx refuses it and closes (statuses {s})")
                check(not ours, f"{name} ({mode}): nothing of the connection mirrored ({len(ours)} requests)")
            else:
                check(s == [200, 200], f"{name} ({mode}): nginx serves it and the canary (statuses {s})")
                want = [shadowed(request), shadowed(canary)]
                check(sorted(ours) == sorted(want), f"{name} ({mode}): mirror got both requests, rewritten")
                if sorted(ours) != sorted(want):
                    for r in ours:
                        print("  got:   ", r[:300])
                    for r in want:
                        print("  wanted:", r[:300])
            # shadowtap decides once it has the bytes that decide; nginx may have
            # closed the connection before the client sent them all.
            if counter and (decided_after is None or sent >= request.index(decided_after) + len(decided_after)):
                expected_counts[counter] += 1
    for counter, n in sorted(expected_counts.items()):
        got_n = policy_counter(stats, counter)
        check(got_n == n, f"stats {counter}={got_n}, expected {n}")


# --- the differential corpus -------------------------------------------------

def H(*fields):
    """A head: request line and fields, CRLF, X-Case first after the line."""
    return b"\r\n".join(fields) + b"\r\n\r\n"


def corpus():
    c = []
    add = lambda name, raw: c.append((name, raw))  # noqa: E731
    get = b"GET /{t}/g HTTP/1.1"
    post = b"POST /{t}/p HTTP/1.1"
    host, xc = b"Host: app", b"X-Case: {t}"
    te, cl5 = b"Transfer-Encoding: chunked", b"Content-Length: 5"
    smuggled = b"GET /{t}/smuggled HTTP/1.1\r\nHost: app\r\nX-Case: {t}-smuggled\r\n\r\n"
    chunk = b"5\r\nhello\r\n0\r\n\r\n"
    # Well-formed, for the baseline.
    add("get", H(get, host, xc))
    add("post_cl", H(post, host, xc, cl5) + b"hello")
    add("post_chunked", H(post, host, xc, te) + b"5;e=1\r\nhello\r\n0\r\nT: 1\r\n\r\n")
    add("pipelined_three", H(get, host, xc) + H(post, host, b"X-Case: {t}-2", cl5) + b"hello" +
        H(b"GET /{t}/3 HTTP/1.1", host, b"X-Case: {t}-3"))
    add("leading_empty_lines", b"\r\n\n" + H(get, host, xc))
    add("http10_keepalive", H(b"GET /{t}/g HTTP/1.0", host, xc, b"Connection: keep-alive"))
    add("http10_close_then_more", H(b"GET /{t}/g HTTP/1.0", host, xc))
    add("connection_close_then_more", H(get, host, xc, b"Connection: close"))
    add("body_with_nul", H(post, host, xc, cl5) + b"he\0lo")
    # CL and TE together, and smuggling shapes.
    add("cl_then_te", H(post, host, xc, b"Content-Length: 6", te) + b"0\r\n\r\nX")
    add("te_then_cl", H(post, host, xc, te, b"Content-Length: 3") + b"0\r\n\r\n")
    add("te_cl_smuggle", H(post, host, xc, te, b"Content-Length: 4") + b"5c\r\n" + smuggled + b"\r\n0\r\n\r\n")
    add("cl_te_smuggle", H(post, host, xc, b"Content-Length: %d" % (5 + len(smuggled)), te) + b"0\r\n\r\n" + smuggled)
    add("te_chunked_sp", H(post, host, xc, b"Transfer-Encoding: chunked ") + chunk)
    add("te_upper", H(post, host, xc, b"Transfer-Encoding: CHUNKED") + chunk)
    add("te_tab_value", H(post, host, xc, b"Transfer-Encoding:\tchunked") + chunk)
    add("te_gzip_chunked", H(post, host, xc, b"Transfer-Encoding: gzip, chunked") + chunk)
    add("te_chunked_identity", H(post, host, xc, b"Transfer-Encoding: chunked, identity") + chunk)
    add("te_two_fields", H(post, host, xc, b"Transfer-Encoding: gzip", te) + chunk)
    add("te_twice_chunked", H(post, host, xc, te, te) + chunk)
    add("te_empty_cl", H(post, host, xc, b"Transfer-Encoding:", cl5) + b"hello")
    add("te_xchunked_cl", H(post, host, xc, b"Transfer-Encoding: xchunked", cl5) + b"hello")
    add("te_identity", H(post, host, xc, b"Transfer-Encoding: identity", cl5) + b"hello")
    add("te_space_before_colon", H(post, host, xc, b"Transfer-Encoding : chunked", cl5) + b"hello")
    add("te_underscore_name", H(post, host, xc, b"Transfer_Encoding: chunked", cl5) + b"hello")
    add("te_at_name", H(post, host, xc, b"Transfer-Encoding@: chunked", cl5) + b"hello")
    add("te_high_byte_name", H(post, host, xc, b"Transfer-Encoding\x80: chunked", cl5) + b"hello")
    add("te_vtab_value", H(post, host, xc, b"Transfer-Encoding: \x0bchunked", cl5) + b"hello")
    add("te_http10", H(b"POST /{t}/p HTTP/1.0", host, xc, te, b"Connection: keep-alive") + chunk)
    add("te_obs_fold", H(post, host, xc, b"X-A: b", b" Transfer-Encoding: chunked", cl5) + b"hello")
    add("te_folded_value", H(post, host, xc, b"Transfer-Encoding:", b" chunked") + chunk)
    # Content-Length variants.
    add("cl_duplicate_same", H(post, host, xc, cl5, cl5) + b"hello")
    add("cl_duplicate_different", H(post, host, xc, cl5, b"Content-Length: 6") + b"hello!")
    add("cl_list", H(post, host, xc, b"Content-Length: 5, 5") + b"hello")
    add("cl_plus", H(post, host, xc, b"Content-Length: +5") + b"hello")
    add("cl_leading_zeros", H(post, host, xc, b"Content-Length: 005") + b"hello")
    add("cl_trailing_space", H(post, host, xc, b"Content-Length: 5 ") + b"hello")
    add("cl_hex", H(post, host, xc, b"Content-Length: 0x5") + b"hello")
    add("cl_negative", H(post, host, xc, b"Content-Length: -5") + b"hello")
    add("cl_empty", H(post, host, xc, b"Content-Length:") + b"hello")
    add("cl_space_before_colon", H(post, host, xc, b"Content-Length : 5") + b"hello")
    add("cl_overflow", H(post, host, xc, b"Content-Length: 99999999999999999999999") + b"hello")
    # obs-fold and whitespace.
    add("obs_fold", H(get, host, xc, b"X-A: b", b" c"))
    add("obs_fold_tab", H(get, host, xc, b"X-A: b", b"\tc"))
    add("obs_fold_host", H(get, host, b" app2", xc))
    add("space_before_colon", H(get, host, xc, b"X-A : b"))
    add("host_space_before_colon", H(get, b"Host : app", xc))
    add("leading_space_first_field", H(get, b" Host: app", xc))
    add("whitespace_line", H(get, host, xc, b" "))
    # NUL and control bytes.
    add("nul_in_value", H(get, host, xc, b"X-A: a\0b"))
    add("nul_in_name", H(get, host, xc, b"X\0A: b"))
    add("nul_in_target", H(b"GET /{t}/a\0b HTTP/1.1", host, xc))
    add("ctl_in_value", H(get, host, xc, b"X-A: a\x01b"))
    add("del_in_value", H(get, host, xc, b"X-A: a\x7fb"))
    # Bare CR and LF.
    add("bare_lf_everywhere", b"GET /{t}/g HTTP/1.1\nHost: app\nX-Case: {t}\n\n")
    add("bare_lf_request_line", b"GET /{t}/g HTTP/1.1\nHost: app\r\nX-Case: {t}\r\n\r\n")
    add("bare_lf_blank_line", b"GET /{t}/g HTTP/1.1\r\nHost: app\r\nX-Case: {t}\r\n\n")
    add("lf_crlf_blank_line", b"GET /{t}/g HTTP/1.1\r\nHost: app\r\nX-Case: {t}\n\r\n")
    add("bare_lf_cl_body", b"POST /{t}/p HTTP/1.1\nHost: app\nX-Case: {t}\nContent-Length: 5\n\nhello")
    add("bare_lf_chunked_head", b"POST /{t}/p HTTP/1.1\nHost: app\nX-Case: {t}\nTransfer-Encoding: chunked\n\n" + chunk)
    add("bare_cr_request_line", b"GET /{t}/g HTTP/1.1\rHost: app\r\nX-Case: {t}\r\n\r\n")
    add("bare_cr_in_value", H(get, host, xc, b"X-A: a\rb"))
    add("bare_cr_empty_value_te", H(post, host, xc, b"x:\rTransfer-Encoding: chunked", cl5) + b"hello")
    add("bare_cr_spaces_value_te", H(post, host, xc, b"x:  \rTransfer-Encoding: chunked") + chunk)
    add("bare_cr_blank_line", b"GET /{t}/g HTTP/1.1\r\nHost: app\r\nX-Case: {t}\r\n\rX")
    add("cr_cr_lf", b"GET /{t}/g HTTP/1.1\r\nHost: app\r\nX-Case: {t}\r\r\n\r\n")
    add("bare_lf_chunk_size", H(post, host, xc, te) + b"5\nhello\r\n0\r\n\r\n")
    add("bare_lf_chunk_data", H(post, host, xc, te) + b"5\r\nhello\n0\r\n\r\n")
    add("bare_lf_last_chunk", H(post, host, xc, te) + b"5\r\nhello\r\n0\n\n")
    add("bare_lf_trailer", H(post, host, xc, te) + b"0\r\nT: 1\n\r\n")
    add("bare_cr_chunk_size", H(post, host, xc, te) + b"5\rXhello\r\n0\r\n\r\n")
    add("bare_cr_chunk_data", H(post, host, xc, te) + b"5\r\nhello\rX0\r\n\r\n")
    # Chunk-size oddities.
    add("chunk_leading_zeros", H(post, host, xc, te) + b"0005\r\nhello\r\n0\r\n\r\n")
    add("chunk_upper_hex", H(post, host, xc, te) + b"A\r\n0123456789\r\n0\r\n\r\n")
    add("chunk_size_space", H(post, host, xc, te) + b"5 \r\nhello\r\n0\r\n\r\n")
    add("chunk_size_tab", H(post, host, xc, te) + b"5\t\r\nhello\r\n0\r\n\r\n")
    add("chunk_size_0x", H(post, host, xc, te) + b"0x5\r\nhello\r\n0\r\n\r\n")
    add("chunk_size_negative", H(post, host, xc, te) + b"-5\r\nhello\r\n0\r\n\r\n")
    add("chunk_size_plus", H(post, host, xc, te) + b"+5\r\nhello\r\n0\r\n\r\n")
    add("chunk_size_overflow", H(post, host, xc, te) + b"ffffffffffffffffff5\r\nhello\r\n0\r\n\r\n")
    add("chunk_ext_quoted", H(post, host, xc, te) + b"5;a=\"b;c\"\r\nhello\r\n0\r\n\r\n")
    add("chunk_ext_two", H(post, host, xc, te) + b"5;a=1;b=2\r\nhello\r\n0\r\n\r\n")
    add("chunk_ext_bare_name", H(post, host, xc, te) + b"5;a\r\nhello\r\n0\r\n\r\n")
    add("chunk_data_too_long", H(post, host, xc, te) + b"5\r\nhello!\r\n0\r\n\r\n")
    add("chunk_missing_last_crlf", H(post, host, xc, te) + b"5\r\nhello\r\n0\r\n")
    add("chunk_smuggle_in_size", H(post, host, xc, te) + b"5;\nhello\r\n0\r\n\r\n")
    # Methods, targets, versions.
    add("query", H(b"QUERY /{t}/q HTTP/1.1", host, xc, cl5) + b"hello")
    add("extension_method", H(b"FOO_BAR-X /{t}/e HTTP/1.1", host, xc))
    add("rtsp_method", H(b"PLAY /{t}/e HTTP/1.1", host, xc))
    add("lowercase_method", H(b"get /{t}/g HTTP/1.1", host, xc))
    add("digit_method", H(b"GET2 /{t}/g HTTP/1.1", host, xc))
    add("m_search_asterisk", H(b"M-SEARCH * HTTP/1.1", host, xc))
    add("get_asterisk", H(b"GET * HTTP/1.1", host, xc))
    add("two_spaces_before_target", H(b"GET  /{t}/g HTTP/1.1", host, xc))
    add("space_after_version", H(b"GET /{t}/g HTTP/1.1 ", host, xc))
    add("tab_in_target", H(b"GET /{t}/a\tb HTTP/1.1", host, xc))
    add("http_1_2", H(b"GET /{t}/g HTTP/1.2", host, xc))
    add("http_2_0", H(b"GET /{t}/g HTTP/2.0", host, xc))
    add("http_0_9", b"GET /{t}/g\r\n")
    add("lowercase_http", H(b"GET /{t}/g http/1.1", host, xc))
    add("absolute_form", H(b"GET http://app:8000/{t}/a HTTP/1.1", host, xc))
    add("absolute_form_other_host", H(b"GET http://other/{t}/a HTTP/1.1", host, xc))
    add("absolute_form_userinfo", H(b"GET http://u:p@app:81/{t}/a HTTP/1.1", host, xc))
    add("absolute_form_no_authority", H(b"GET http://:80/{t}/a HTTP/1.1", host, xc))
    # Host.
    add("no_host_http11", H(get, xc))
    add("no_host_http10", H(b"GET /{t}/g HTTP/1.0", xc, b"Connection: keep-alive"))
    add("no_host_http10_absolute", H(b"GET http://app:81/{t}/g HTTP/1.0", xc, b"Connection: keep-alive"))
    add("no_host_http10_body", H(b"POST /{t}/p HTTP/1.0", xc, cl5) + b"hello")
    add("two_hosts", H(get, host, b"Host: app", xc))
    add("empty_host", H(get, b"Host:", xc))
    add("host_at_name", H(get, b"Host@: evil", host, xc))
    # A request whose body holds another request.
    add("body_holds_request", H(post, host, xc, b"Content-Length: %d" % len(smuggled)) + smuggled)
    add("garbage_after_request", H(get, host, xc) + b"\x00\x01garbage\r\n")
    return c


def run_differential(m, st):
    cases, sent = [], {}
    for name, raw in corpus():
        for bw in (False, True):
            t = tokens(name, bw)
            data = raw.replace(b"{t}", t) + CANARY.replace(b"{t}", t)
            cases.append((t.decode(), data, bw))
            sent[t] = data
    m.send(cases)
    wait_stable(m.mirror_rec, quiet=2.0, timeout=90)
    got = m.mirror_got()
    st.stop()
    accepted = collections.defaultdict(list)
    for e in m.nginx_log():
        if e["status"] < 400:
            accepted[e["case"]].append(e)
    check(len(accepted) > len(cases) // 2, f"nginx accepted requests of {len(accepted)} cases (a sane corpus)")
    check(len(got) >= len(cases) // 2, f"the mirror got {len(got)} requests")
    bad = 0
    for raw in got:
        why = None
        for inserted in (False, True):
            saw = as_primary_saw(raw, inserted)
            if isinstance(saw, str):
                why = why or saw
                continue
            original, line, host, case, body = saw
            match = None
            for e in accepted.get(case, []):
                if (e["request"] == line and e["host"] == host and e["length"] == len(original)
                        and e["body"] == body):
                    match = e
                    break
            if match is not None:
                accepted[case].remove(match)  # each accepted request backs one mirrored request
                why = None
                break
            why = f"nginx accepted no such request (line {line!r}, host {host!r}, {len(original)} bytes, body {body!r})"
        if why is not None:
            bad += 1
            print(f"  mirrored, not accepted by nginx as such ({why}):\n    {raw[:400]!r}")
    check(bad == 0, f"every one of the {len(got)} mirrored requests is one nginx accepted as the same request")
    # Not a failure: what nginx served and shadowtap did not mirror (refused as
    # ambiguous, or after a refused request on the same connection).
    unmirrored = sorted(c.decode() for c, left in accepted.items() if c and left and not c.endswith(b"-canary"))
    print(f"  served by nginx, not mirrored ({len(unmirrored)}): {' '.join(unmirrored)}")
    # The corpus reaches the decisions it is about (the mirror would miss a
    # regression that refuses everything).
    stats = st.stats()
    for counter in ("refused_bare_cr", "refused_transfer_coding", "refused_asterisk_form", "tolerated_bare_lf",
                    "tolerated_extension_method", "tolerated_http10_without_host", "tolerated_ignored_header_name",
                    "closed_after_refused"):
        n = policy_counter(stats, counter)
        check(n > 0, f"stats {counter}={n} > 0")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shadowtap", required=True)
    ap.add_argument("--part", choices=("policy", "differential"), required=True)
    args = ap.parse_args()
    netlab.require_root_or_skip("the HTTP/1 policy test")
    m = NginxLab()
    try:
        st = m.shadowtap(args.shadowtap)
        if args.part == "policy":
            run_policy(m, st)
        else:
            run_differential(m, st)
    finally:
        m.close()
    return finish(f"e2e http1 {args.part}")


if __name__ == "__main__":
    sys.exit(main())
