#!/usr/bin/env python3
"""End-to-end: shadowtap mirrors HTTP/2 cleartext (h2c) and gRPC-shaped requests.

  cli (198.18.0.1) --veth-- node (198.18.0.2; primary h2c :8080 and :8081, nghttpd :8082; shadowtap)
                            node (198.18.1.1) --veth-- mir (198.18.1.2; h2c mirror :8080)

The primaries on :8080 (prior knowledge) and :8081 (it also accepts
"Upgrade: h2c", which nghttpd 1.52 does not) and the mirror are
h2_recording_server.py (python3-h2), which record every request's fields,
body and trailers; nghttpd on :8082 is a third primary. Clients: nghttp
(prior knowledge, and -u for the upgrade) and h2_held_client.py.

Asserts: every request the primary got (unary, a 200 kB body over many DATA
frames, a gRPC-shaped request with trailers, several streams on one
connection) reaches the mirror with ":authority" suffixed and every other
field, the body and the trailers identical; the upgraded request reaches the
mirror as HTTP/2; an HTTP/2 connection open before shadowtap started is
counted (mid-stream) and skipped, and its requests still get their answers;
an HTTP/1-only primary declining curl's "Upgrade: h2c" still has every
request of that connection mirrored as HTTP/1; the summary and /metrics count
it all.

Usage: test_h2.py --shadowtap PATH
"""
import argparse
import base64
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netlab  # noqa: E402
from harness import (PY, MirrorLab, add_workers_arg, check, finish, read_records, shadow_host,  # noqa: E402
                     use_workers, wait_count)

HERE = os.path.dirname(os.path.abspath(__file__))
PORT = 8080
UPGRADE_PORT = 8081
NGHTTPD_PORT = 8082
HTTP1_PORT = 8083  # HTTP/1-only primary: declines "Upgrade: h2c"
METRICS = "127.0.0.1:9465"
AUTHORITY = "grpc.svc:8080"
SHADOW_AUTHORITY = "grpc.svc-shadow:8080"


def records(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def wait_records(path, want, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline and len(records(path)) < want:
        time.sleep(0.1)
    return records(path)


def field(rec, name):
    for n, v in rec["headers"]:
        if n == name:
            return v
    return None


def expected_mirror(rec):
    """The primary's request as the mirror must get it: ':authority' suffixed
    before the port, nothing else changed."""
    headers = [[n, SHADOW_AUTHORITY if n == ":authority" and v == AUTHORITY else v] for n, v in rec["headers"]]
    return {"headers": headers, "body": rec["body"], "trailers": rec["trailers"]}


def nghttp(lab, ns, *args):
    r = lab.run(ns, ["nghttp", "-n", *args], capture_output=True, text=True, timeout=60)
    return r.returncode


def scrape(lab, ns):
    r = lab.run(ns, ["curl", "-s", f"http://{METRICS}/metrics"], capture_output=True, text=True, timeout=20)
    out = {}
    for line in r.stdout.splitlines():
        mm = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$', line)
        if mm:
            out[(mm.group(1), frozenset(re.findall(r'(\w+)="([^"]*)"', mm.group(2) or "")))] = float(mm.group(3))
    return out


def total(metrics, name, **want):
    return sum(v for (n, labels), v in metrics.items()
               if n == name and all((k, str(x)) in labels for k, x in want.items()))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shadowtap", required=True)
    add_workers_arg(ap)  # --workers 2: each worker opens its own h2c pool on its first HTTP/2 request
    args = ap.parse_args()
    use_workers(args.workers)
    netlab.require_root_or_skip("the end-to-end HTTP/2 test")
    for tool in ("nghttp", "nghttpd"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode != 0:
            print(f"skip: {tool} not installed (scripts/install-deps.sh installs nghttp2-client/-server)")
            return 77
    if subprocess.run([PY, "-c", "import h2"], capture_output=True).returncode != 0:
        print("skip: python3-h2 not installed (scripts/install-deps.sh installs it)")
        return 77

    m = MirrorLab("sth2")
    lab, cli, node, mir, workdir = m.lab, m.cli, m.node, m.mir, m.workdir
    try:
        primary_rec = os.path.join(workdir, "primary-h2.jsonl")
        mirror_rec = os.path.join(workdir, "mirror-h2.jsonl")
        upgrade_rec = os.path.join(workdir, "primary-upgrade.jsonl")
        for ns, rec, port in ((node, primary_rec, PORT), (node, upgrade_rec, UPGRADE_PORT), (mir, mirror_rec, PORT)):
            p = lab.spawn(ns, [PY, os.path.join(HERE, "h2_recording_server.py"), "--port", str(port),
                               "--record", rec], stdout=subprocess.PIPE, text=True)
            if p.stdout.readline().strip() != "ready":
                raise RuntimeError("h2 recording server did not start")
        h1_prim_rec = os.path.join(workdir, "primary-h1.jsonl")
        h1_mirr_rec = os.path.join(workdir, "mirror-h1.jsonl")
        for ns, rec in ((node, h1_prim_rec), (mir, h1_mirr_rec)):
            p = lab.spawn(ns, [PY, os.path.join(HERE, "recording_server.py"), "--port", str(HTTP1_PORT),
                               "--record", rec], stdout=subprocess.PIPE, text=True)
            if p.stdout.readline().strip() != "ready":
                raise RuntimeError("HTTP/1 recording server did not start")
        docroot = os.path.join(workdir, "docroot")
        os.makedirs(docroot)
        with open(os.path.join(docroot, "index.html"), "w") as f:
            f.write("hello\n")
        lab.spawn(node, ["nghttpd", "--no-tls", "-d", docroot, str(NGHTTPD_PORT)],
                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)

        # A connection open before shadowtap starts.
        held = lab.spawn(cli, [PY, os.path.join(HERE, "h2_held_client.py"), "198.18.0.2", str(PORT), AUTHORITY],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        check(held.stdout.readline().strip() == "first-ok", "held connection: first request answered")

        st = m.shadowtap(args.shadowtap, "--metrics-address", METRICS, argv=[
            "--interface", m.node_if,
            "--rule", f"port={PORT},mirror=httpbin-mirror:{PORT}",
            "--rule", f"port={UPGRADE_PORT},mirror=httpbin-mirror:{PORT}",
            "--rule", f"port={NGHTTPD_PORT},mirror=httpbin-mirror:{PORT}",
            "--rule", f"port={HTTP1_PORT},mirror=httpbin-mirror:{HTTP1_PORT}"])

        held.stdin.write("go\n")
        held.stdin.flush()
        check(held.stdout.readline().strip() == "second-ok",
              "held connection: request after shadowtap started answered (production unaffected)")

        body = bytes((i * 131 + i // 251) & 0xff for i in range(200_000))
        body_path = os.path.join(workdir, "body.bin")
        with open(body_path, "wb") as f:
            f.write(body)
        grpc_msg = b"\x0a\x05world" * 3
        grpc_path = os.path.join(workdir, "grpc.bin")
        with open(grpc_path, "wb") as f:
            f.write(b"\x00" + len(grpc_msg).to_bytes(4, "big") + grpc_msg)
        url = f"http://198.18.0.2:{PORT}"
        auth = ["-H", f":authority: {AUTHORITY}"]
        rc = [
            nghttp(lab, cli, *auth, "-H", "x-trace: abc", "-H", "authorization: Bearer t0ken",
                   f"{url}/hello?x=1"),
            nghttp(lab, cli, *auth, "-d", body_path, "-H", "content-type: application/octet-stream",
                   f"{url}/upload"),
            nghttp(lab, cli, *auth, "-d", grpc_path, "-H", "content-type: application/grpc", "-H", "te: trailers",
                   "-H", "grpc-timeout: 1S", "--trailer", "x-checksum: 42", f"{url}/helloworld.Greeter/SayHello"),
            nghttp(lab, cli, *auth, f"{url}/m1", f"{url}/m2", f"{url}/m3"),
            nghttp(lab, cli, "-u", f"http://198.18.0.2:{UPGRADE_PORT}/up"),
            nghttp(lab, cli, "-H", "x-from: nghttpd-client", f"http://198.18.0.2:{NGHTTPD_PORT}/index.html"),
        ]
        check(rc == [0] * len(rc), f"nghttp clients all succeeded (exit codes {rc})")
        # curl --http2 on http:// asks for "Upgrade: h2c" on its first request;
        # the HTTP/1-only primary declines and curl goes on in HTTP/1 on the
        # same connection: all three requests are mirrored.
        h1 = lab.run(cli, ["curl", "-sS", "--http2", "-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null",
                           "-w", "%{num_connects} ", f"http://198.18.0.2:{HTTP1_PORT}/u1",
                           f"http://198.18.0.2:{HTTP1_PORT}/u2", f"http://198.18.0.2:{HTTP1_PORT}/u3"],
                     capture_output=True, text=True, timeout=30)
        check(h1.returncode == 0 and h1.stdout.split() == ["1", "0", "0"],
              f"curl --http2 against the HTTP/1 primary: one connection for three requests ({h1.stdout!r})")

        # 1 + 1 + 1 + 3 captured on :8080, 1 upgraded on :8081, 1 to nghttpd on :8082;
        # /before and /after are not mirrored.
        want_mirror = 8
        prim = wait_records(primary_rec, 8)
        mirr = wait_records(mirror_rec, want_mirror)
        time.sleep(1.0)
        mirr = records(mirror_rec)
        check(len(prim) == 8, f"primary got 8 HTTP/2 requests ({len(prim)})")
        check(len(mirr) == want_mirror, f"mirror got {want_mirror} HTTP/2 requests ({len(mirr)})")

        by_path = {field(r, ":path"): r for r in mirr}
        for p in prim:
            path = field(p, ":path")
            if path in ("/before", "/after"):
                check(path not in by_path, f"{path} (connection open before start) not mirrored")
                continue
            got = by_path.get(path)
            check(got is not None and got == expected_mirror(p),
                  f"{path}: mirror got the primary's request with :authority suffixed, the rest identical")
        h1_prim = read_records(h1_prim_rec)
        wait_count(h1_mirr_rec, 3, 20)
        h1_mirr = read_records(h1_mirr_rec)
        check(len(h1_prim) == 3 and h1_prim[0].find(b"Upgrade: h2c") > 0,
              f"HTTP/1 primary got 3 requests, the first asking for h2c ({len(h1_prim)})")
        check(h1_mirr == [shadow_host(r) for r in h1_prim],
              "declined upgrade: the upgrade request and the two HTTP/1 requests after it on the same "
              "connection reach the mirror, Host suffixed, the rest identical")
        ups = records(upgrade_rec)
        up = by_path.get("/up")
        check(len(ups) == 1 and up is not None and field(up, ":authority") == f"198.18.0.2-shadow:{UPGRADE_PORT}"
              and [h for h in up["headers"] if h[0] != ":authority"] ==
              [h for h in ups[0]["headers"] if h[0] != ":authority"],
              "upgraded request (Upgrade: h2c) mirrored as an HTTP/2 stream, :authority suffixed, fields as "
              "the primary saw them")
        ng = by_path.get("/index.html")
        check(ng is not None and field(ng, ":authority") == f"198.18.0.2-shadow:{NGHTTPD_PORT}"
              and field(ng, "x-from") == "nghttpd-client", "request to nghttpd mirrored")
        upl = by_path.get("/upload")
        check(upl is not None and base64.b64decode(upl["body"]) == body, "200 kB body over many DATA frames intact")
        g = by_path.get("/helloworld.Greeter/SayHello")
        check(g is not None and field(g, "te") == "trailers" and g["trailers"] == [["x-checksum", "42"]],
              "gRPC-shaped request: te: trailers and the client's trailers mirrored")

        mt = scrape(lab, node)
        check(total(mt, "shadowtap_connections_detected_total", protocol="h2_prior_knowledge") >= 4,
              "metrics: prior-knowledge connections detected")
        check(total(mt, "shadowtap_connections_detected_total", protocol="midstream_http1") >= 1,
              "metrics: the connection open before start counted as joined mid-stream")
        check(total(mt, "shadowtap_h2c_upgrades_total", outcome="accepted") == 1, "metrics: one h2c upgrade accepted")
        asked = sum(1 for r in h1_prim if b"\r\nUpgrade: h2c\r\n" in r)  # curl asks on every HTTP/1 request
        declined = total(mt, "shadowtap_h2c_upgrades_total", outcome="declined")
        check(declined == asked >= 1, f"metrics: every h2c upgrade the HTTP/1 primary declined counted ({declined:.0f} "
              f"== {asked})")
        check(total(mt, "shadowtap_h2_streams_total", outcome="request") == want_mirror,
              f"metrics: {want_mirror} HTTP/2 requests decoded")
        check(total(mt, "shadowtap_h2_connections_failed_total") == 0, "metrics: no HTTP/2 decoding failure")
        h2_2xx = total(mt, "shadowtap_mirror_requests_total", protocol="h2", outcome="response_2xx")
        check(h2_2xx == want_mirror, f"metrics: {want_mirror} HTTP/2 mirror responses 2xx ({h2_2xx:.0f})")
        check(total(mt, "shadowtap_mirror_grpc_responses_total", rule=1, status="ok") == 1,
              "metrics: the gRPC mirror response's grpc-status counted")
        for rule in (1, 2, 3, 4):
            req = total(mt, "shadowtap_requests_total", rule=rule)
            accounted = (total(mt, "shadowtap_requests_not_mirrored_total", rule=rule) +
                         total(mt, "shadowtap_mirror_requests_total", rule=rule) +
                         total(mt, "shadowtap_mirror_queue_requests", rule=rule) +
                         total(mt, "shadowtap_mirror_in_flight_requests", rule=rule))
            check(req == accounted, f"metrics rule {rule}: requests {req:.0f} == accounted {accounted:.0f}")

        check(st.stop() == 0, "shadowtap exits 0 on SIGTERM")
        stats = st.stats()
        prior = stats.value("shadowtap_connections_detected_total", protocol="h2_prior_knowledge")
        upgrades = stats.value("shadowtap_h2c_upgrades_total", outcome="accepted")
        errors = stats.value("shadowtap_h2_connections_failed_total", reason="decode_error")
        check(prior >= 4 and upgrades == 1 and errors == 0,
              f"stats: h2 prior_knowledge={prior} upgrades={upgrades} decode_errors={errors}")
        answered = stats.answered(rule=1, protocol="h2")
        check(answered >= 6, f"stats: rule 1 h2 responses={answered}")
        held.stdin.close()
        held.wait(timeout=10)

        # --dry-run prints HTTP/2 requests as JSON lines (stdout) and sends nothing.
        before = len(records(mirror_rec))
        dry = m.shadowtap(args.shadowtap, argv=["--interface", m.node_if, "--rule", f"port={PORT}", "--dry-run"])
        rc = nghttp(lab, cli, *auth, f"{url}/dry1", f"{url}/dry2")
        time.sleep(1.0)
        check(rc == 0 and dry.stop() == 0, "dry run: client answered, shadowtap exits 0")
        lines = [json.loads(l) for l in dry.text().splitlines() if l.startswith("{")]
        got = sorted((l.get("protocol"), l.get("target"), l.get("host"), l.get("shadow_host")) for l in lines)
        check(got == [("h2", p, AUTHORITY, SHADOW_AUTHORITY) for p in ("/dry1", "/dry2")],
              f"dry run: both HTTP/2 requests printed with protocol h2 and the shadow authority ({got})")
        check(len(records(mirror_rec)) == before, "dry run: nothing sent to the mirror")
    finally:
        m.close()
    return finish("test_h2")


if __name__ == "__main__":
    sys.exit(main())
