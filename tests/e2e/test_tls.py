"""HTTPS services mirrored from OpenSSL's plaintext (issue 18): --tls.

  cli (198.18.0.1) --veth-- node (198.18.0.2; nginx HTTPS :8443, python ssl servers :9443 :9446 :8444; shadowtap --tls)
                            node (198.18.1.1) --veth-- mir (198.18.1.2; recording_server.py :8000)

shadowtap (--workers 2: a connection's TLS records and packets must meet in
one worker) starts first, then nginx and the python servers (a server started
after shadowtap is mirrored: uprobes on the library file cover processes
started later). curl sends keep-alive, chunked and 1 MiB requests over TLS;
what curl sent is taken from its own --trace (the plaintext it handed to
OpenSSL). A python ssl client writes three pipelined requests in one SSL_write;
`openssl s_client` sends two pipelined requests from its stdin; curl also talks
to a python `ssl` server (http.server) on a rule's port. The mirror must have
received exactly those requests with only the Host rewritten. The python
server on a port without a rule is not read (the kernel counts its connections
as no_rule and nothing of it reaches the mirror). After SIGTERM and after
SIGKILL none of the programs (hence none of the uprobes) stays loaded.
Then tls=true to a TLS mirror (verified with tls-ca, refused without it,
accepted with tls-verify=false), and HTTP/2 over TLS (ALPN h2, nginx's http2)
with concurrent streams to an h2c mirror, then to an HTTP/2-over-TLS mirror
(tls=true: ALPN h2, SNI, tls-ca). Last, the agent as deploy/tls-patch.yaml runs it:
refused with daemonset.yaml's capabilities alone (naming CAP_SYS_ADMIN), and with the
patch's, the node's libssl bind-mounted at another path in its own mount namespace, a
connection is followed and mirrored.
"""
import argparse
import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netlab  # noqa: E402
from harness import HERE, PY, Shadowtap, check, finish, loaded_programs, read_records, shadow_host, wait_stable  # noqa: E402

PRIMARY = "198.18.0.2"
TLS_PORT = 8443
OTHER_PORT = 9443
H2_PORT = 8445  # nginx with http2 on (ALPN h2)
COPY_PORT = 8444  # a rule's port, served through a copy of libssl the probes are not on
PY_PORT = 9446  # a rule's port, served by the python ssl server (the probed libssl)
LIBSSL = "/usr/lib/x86_64-linux-gnu/libssl.so.3"
DEPLOY = os.path.join(HERE, "..", "..", "deploy")


def manifest_caps(name):
    """The shadowtap container's added capabilities in deploy/NAME (daemonset.yaml, or
    tls-patch.yaml), as setpriv names them."""
    with open(os.path.join(DEPLOY, name)) as f:
        ds = next(d for d in yaml.safe_load_all(f) if d and "spec" in d and "template" in d["spec"])
    container = next(c for c in ds["spec"]["template"]["spec"]["containers"] if c["name"] == "shadowtap")
    return [c.lower() for c in container["securityContext"]["capabilities"]["add"]]
TLS_PROGRAMS = {"st_tls_set_fd", "st_tls_read", "st_tls_read_ex", "st_tls_read_ret", "st_tls_read_ex_ret",
                "st_tls_write", "st_tls_write_ex", "st_tls_write_ret", "st_tls_write_ex_ret", "st_tls_free"}

NGINX_CONF = """
daemon off;
master_process off;
user root;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log info;
events {{ worker_connections 512; }}
http {{
  client_body_temp_path {work}/nginx-tmp;
  access_log off;
  client_max_body_size 4m;
  client_body_buffer_size 2m;
  server {{
    listen {primary}:{port} ssl;
    ssl_certificate {work}/cert.pem;
    ssl_certificate_key {work}/key.pem;
    location / {{ return 200 "ok\\n"; }}
  }}
  server {{
    listen {primary}:{h2port} ssl http2;
    ssl_certificate {work}/cert.pem;
    ssl_certificate_key {work}/key.pem;
    location / {{ return 200 "ok\\n"; }}
  }}
}}
"""

OTHER_SERVER = r"""
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "3"); self.end_headers(); self.wfile.write(b"ok\n")
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0"))); self.do_GET()
    def log_message(self, *a): pass
srv = http.server.HTTPServer((sys.argv[1], int(sys.argv[2])), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(sys.argv[3], sys.argv[4])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("ready", flush=True)
srv.serve_forever()
"""


# Several requests in ONE SSL_write on one connection (pipelined), then the
# responses until the server closes (the last request says Connection: close).
PIPELINING_CLIENT = r"""
import base64, socket, ssl, sys
data = base64.b64decode(sys.argv[3])
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection((sys.argv[1], int(sys.argv[2]))))
n = s.send(data)  # one SSL_write_ex of the whole buffer (under one record's 16 KiB)
got = bytearray()
s.settimeout(10)
while True:
    b = s.recv(65536)
    if not b:
        break
    got += b
print(n, got.count(b"HTTP/1.1 200 "), flush=True)
"""


def pipelined_requests(prefix, host, count):
    """`count` requests, the second with a body, the last closing the connection."""
    reqs = []
    for i in range(1, count + 1):
        close = "Connection: close\r\n" if i == count else ""
        head = f"/{prefix}/{i} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: st-tls\r\n{close}"
        if i == 2:
            body = f"pipelined-body-{prefix}".encode()
            reqs.append(f"POST {head}Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        else:
            reqs.append(f"GET {head}\r\n".encode())
    return reqs


def sent_requests(trace_path):
    """The HTTP requests curl handed to OpenSSL, from its --trace: each starts
    with a 'Send header' block, followed by its 'Send data' blocks."""
    requests, current, take = [], None, False
    with open(trace_path, errors="replace") as f:
        for line in f:
            if line.startswith("=> Send header"):
                current = bytearray()
                requests.append(current)
                take = True
            elif line.startswith("=> Send data"):
                take = current is not None
            elif line.startswith(("<=", "==", "=>")):
                take = False
            elif take:
                m = re.match(r"^[0-9a-f]{4}: ((?:[0-9a-f]{2} ){1,16})", line)
                if m:
                    current += bytes.fromhex(m.group(1).replace(" ", ""))
    return [bytes(r) for r in requests]


class TlsLab:
    def __init__(self):
        self.lab = netlab.Lab("sttls")
        self.work = tempfile.mkdtemp(prefix="st-tls-")
        lab = self.lab
        self.cli, self.node, self.mir = lab.netns("cli"), lab.netns("node"), lab.netns("mir")
        _, self.node_if = lab.link(self.cli, self.node, ["198.18.0.1/24"], [f"{PRIMARY}/24"], "c")
        lab.link(self.node, self.mir, ["198.18.1.1/24"], ["198.18.1.2/24"], "m")
        lab.hosts_file(self.node, {"httpbin-mirror": "198.18.1.2"})
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                        "/CN=primary", "-keyout", f"{self.work}/key.pem", "-out", f"{self.work}/cert.pem"],
                       check=True, capture_output=True)
        os.makedirs(f"{self.work}/nginx-tmp", exist_ok=True)
        self.mirror_rec = os.path.join(self.work, "mirror.jsonl")
        p = lab.spawn(self.mir, [PY, os.path.join(HERE, "recording_server.py"), "--port", "8000",
                                 "--record", self.mirror_rec, "--name", "mirror"], stdout=subprocess.PIPE, text=True)
        if p.stdout.readline().strip() != "ready":
            raise RuntimeError("mirror server did not start")

    def start_nginx(self):
        conf = os.path.join(self.work, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(work=self.work, primary=PRIMARY, port=TLS_PORT, h2port=H2_PORT))
        self.nginx = self.lab.spawn(self.node, ["nginx", "-c", conf, "-p", self.work])
        self.wait_port(TLS_PORT)

    def start_other(self, port=OTHER_PORT, env=None):
        p = self.lab.spawn(self.node, [PY, "-c", OTHER_SERVER, PRIMARY, str(port), f"{self.work}/cert.pem",
                                       f"{self.work}/key.pem"], stdout=subprocess.PIPE, text=True, env=env)
        if p.stdout.readline().strip() != "ready":
            raise RuntimeError("the other TLS server did not start")

    def start_copy_server(self):
        """The python server on COPY_PORT with its own copy of libssl.so.3 (as a
        container would have): TLS the probes cannot see."""
        lib = os.path.join(self.work, "lib")
        os.makedirs(lib, exist_ok=True)
        shutil.copy(LIBSSL, lib)
        self.start_other(COPY_PORT, env={**os.environ, "LD_LIBRARY_PATH": lib})

    def wait_port(self, port):
        deadline = time.time() + 10
        while time.time() < deadline:
            r = self.lab.run(self.cli, ["bash", "-c", f"exec 3<>/dev/tcp/{PRIMARY}/{port}"], capture_output=True)
            if r.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"nothing listens on {PRIMARY}:{port}")

    def pipelined(self, count=3):
        """A python ssl client writes `count` requests in one SSL_write on one connection."""
        reqs = pipelined_requests("pipe", f"{PRIMARY}:{TLS_PORT}", count)
        data = b"".join(reqs)
        r = self.lab.run(self.cli, [PY, "-c", PIPELINING_CLIENT, PRIMARY, str(TLS_PORT),
                                    base64.b64encode(data).decode()], capture_output=True, text=True, timeout=60)
        check(r.returncode == 0 and r.stdout.split() == [str(len(data)), str(count)],
              f"pipelined: {count} requests written in one SSL_write, {count} answered 200 by the primary "
              f"(wrote, answered: {r.stdout.split()} {r.stderr.strip()[-300:]})")
        return reqs

    def s_client(self, count=2):
        """`openssl s_client` sends `count` pipelined requests read from its stdin."""
        reqs = pipelined_requests("sclient", f"{PRIMARY}:{TLS_PORT}", count)
        r = self.lab.run(self.cli, ["openssl", "s_client", "-connect", f"{PRIMARY}:{TLS_PORT}", "-servername", "primary",
                                    "-quiet", "-ign_eof"], input=b"".join(reqs), capture_output=True, timeout=60)
        answered = r.stdout.count(b"HTTP/1.1 200 ")
        check(r.returncode == 0 and answered == count,
              f"openssl s_client: its {count} requests answered 200 by the primary ({answered}, rc {r.returncode})")
        return reqs

    def curl(self, name, *args, port=TLS_PORT, urls=("/",)):
        trace = os.path.join(self.work, f"{name}.trace")
        targets = [a for u in urls for a in ("-o", "/dev/null", f"https://{PRIMARY}:{port}{u}")]
        r = self.lab.run(self.cli, ["curl", "-sS", "-k", "--http1.1", "--trace", trace,
                                    "-w", "%{http_code}\\n", "-H", "User-Agent: st-tls", *args, *targets],
                         capture_output=True, text=True, timeout=60)
        codes = r.stdout.split()
        check(r.returncode == 0 and codes == ["200"] * len(urls),
              f"{name}: the primary answered every request 200 over TLS (got {codes}, rc {r.returncode} {r.stderr.strip()})")
        return sent_requests(trace)

    def close(self):
        self.lab.close()
        shutil.rmtree(self.work, ignore_errors=True)


def start_shadowtap(t, binary):
    return Shadowtap(t.lab, t.node, binary, t.node_if, t.work, "--tls", "--workers", "2",
                     argv=["--interface", t.node_if, "--rule", f"port={TLS_PORT},mirror=httpbin-mirror:8000",
                           "--rule", f"port={COPY_PORT},mirror=httpbin-mirror:8000",
                           "--rule", f"port={PY_PORT},mirror=httpbin-mirror:8000"])


TLS_MIRROR = r"""
import base64, json, socket, ssl, sys, threading
port, cert, key, record = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(cert, key)
names = {}
def on_sni(sock, name, _ctx):
    names[id(sock)] = name
ctx.sni_callback = on_sni
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", port)); srv.listen(64)
out = open(record, "a", buffering=1); lock = threading.Lock()
def serve(raw_conn):
    try:
        conn = ctx.wrap_socket(raw_conn, server_side=True)
    except (OSError, ssl.SSLError):
        raw_conn.close(); return
    data = bytearray(); conn.settimeout(0.3)
    try:
        while True:
            b = conn.recv(65536)
            if not b: break
            data += b
    except (socket.timeout, OSError, ssl.SSLError):
        pass
    if data:
        with lock:
            out.write(json.dumps({"raw": base64.b64encode(bytes(data)).decode(), "sni": names.get(id(conn))}) + "\n")
        try:
            conn.settimeout(5); conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        except OSError:
            pass
    conn.close()
print("ready", flush=True)
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""

HELD_CLIENT = r"""
import socket, ssl, sys, time
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection((sys.argv[1], int(sys.argv[2]))))
print("connected", flush=True)
sys.stdin.readline()
s.sendall(b"GET /held HTTP/1.1\r\nHost: primary\r\n\r\n")
print(s.recv(4096)[:12].decode(), flush=True)
"""


def held_tls_programs(st):
    return {i for name in TLS_PROGRAMS for i in st.held_programs(name)}


def gone(ids, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline and loaded_programs(ids):
        time.sleep(0.2)
    return not loaded_programs(ids)


def mirror_over_tls(t, binary):
    """tls=true: the mirror gets the requests over TLS, SNI from the mirror's
    host, its certificate verified against tls-ca; unverifiable without it
    (nothing sent, connect errors counted); tls-verify=false accepts it."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=httpbin-mirror", "-addext", "subjectAltName=DNS:httpbin-mirror",
                    "-keyout", f"{t.work}/mkey.pem", "-out", f"{t.work}/mcert.pem"], check=True, capture_output=True)
    rec = os.path.join(t.work, "tls-mirror.jsonl")
    p = t.lab.spawn(t.mir, [PY, "-c", TLS_MIRROR, "8443", f"{t.work}/mcert.pem", f"{t.work}/mkey.pem", rec],
                    stdout=subprocess.PIPE, text=True)
    check(p.stdout.readline().strip() == "ready", "the TLS mirror listens")

    def run(keys, name):
        st = Shadowtap(t.lab, t.node, binary, t.node_if, t.work, "--tls",
                       argv=["--interface", t.node_if, "--rule", f"port={TLS_PORT},mirror=httpbin-mirror:8443,{keys}"])
        sent = t.curl(name, urls=(f"/{name}",))
        wait_stable(rec, quiet=1.5, timeout=15)
        time.sleep(1.5)
        s = st.stats()
        st.stop()
        return sent, st, s

    sent, st, _ = run(f"tls=true,tls-ca={t.work}/mcert.pem", "verified")
    got = [json.loads(l) for l in open(rec)] if os.path.exists(rec) else []
    check(len(got) == 1 and base64.b64decode(got[0]["raw"]) == shadow_host(sent[0]),
          "tls=true, tls-ca: the mirror got the request over TLS, byte-identical but the host")
    check(got and got[0]["sni"] == "httpbin-mirror", f"SNI is the mirror's host ({got[0]['sni'] if got else None})")

    _, st, s = run("tls=true", "unverified")
    check(len(open(rec).readlines()) == 1, "tls=true against a self-signed mirror without tls-ca: nothing is sent")
    check("certificate" in st.text() and s.outcomes().get("connect_error", 0) >= 1,
          f"... the verification failure is logged and counted ({s.outcomes()})")

    _, st, _ = run("tls=true,tls-verify=false", "noverify")
    lines = open(rec).readlines()
    check(len(lines) == 2 and base64.b64decode(json.loads(lines[-1])["raw"]).startswith(b"GET /noverify "),
          "tls-verify=false: sent to the unverified mirror")


def h2_streams_to_mirror(t, paths, rec):
    """curl sends `paths` as concurrent streams of one HTTP/2-over-TLS connection
    to nginx; returns what the mirror recording in `rec` got (JSON lines)."""
    targets = [a for u in paths for a in ("-o", "/dev/null", f"https://{PRIMARY}:{H2_PORT}{u}")]
    r = t.lab.run(t.cli, ["curl", "-sS", "--no-progress-meter", "-k", "--http2", "--parallel", "-w",
                          "%{http_version} %{http_code}\\n", "-H", "User-Agent: st-tls", *targets],
                  capture_output=True, text=True, timeout=60)
    check(r.returncode == 0 and r.stdout.split("\n")[:len(paths)] == ["2 200"] * len(paths),
          f"curl spoke HTTP/2 over TLS to nginx, {len(paths)} streams answered ({r.stdout.split()} {r.stderr.strip()})")
    deadline = time.time() + 15
    while time.time() < deadline and (not os.path.exists(rec) or len(open(rec).readlines()) < len(paths)):
        time.sleep(0.2)
    time.sleep(1.0)
    return [json.loads(l) for l in open(rec)] if os.path.exists(rec) else []


def h2_over_tls(t, binary):
    """ALPN h2: nginx with http2 on; curl sends 3 concurrent streams on one
    connection; the h2c mirror gets each with :authority suffixed."""
    rec = os.path.join(t.work, "h2-mirror.jsonl")
    p = t.lab.spawn(t.mir, [PY, os.path.join(HERE, "h2_recording_server.py"), "--port", "8002", "--record", rec],
                    stdout=subprocess.PIPE, text=True)
    check(p.stdout.readline().strip() == "ready", "the h2c mirror listens")
    st = Shadowtap(t.lab, t.node, binary, t.node_if, t.work, "--tls",
                   argv=["--interface", t.node_if, "--rule", f"port={H2_PORT},mirror=httpbin-mirror:8002"])
    paths = ["/h2/a", "/h2/b?q=1", "/h2/c"]
    got = h2_streams_to_mirror(t, paths, rec)
    heads = [dict(g["headers"]) for g in got]
    check(sorted(h.get(":path") for h in heads) == sorted(paths),
          f"the h2c mirror got the 3 streams' requests ({[h.get(':path') for h in heads]})")
    check(all(h.get(":authority") == f"{PRIMARY}-shadow:{H2_PORT}" and h.get("user-agent") == "st-tls" for h in heads),
          f"... with :authority suffixed and the other fields as sent ({[h.get(':authority') for h in heads]})")
    time.sleep(1.5)
    s = st.stats()
    followed = s.value("shadowtap_kernel_tls_connections_total", outcome="followed")
    check(followed == 1, f"one TLS connection followed for the 3 concurrent streams ({followed})")
    st.stop()


def h2_to_a_tls_mirror(t, binary):
    """tls=true for HTTP/2: the streams of nginx's HTTP/2 over TLS reach an
    HTTP/2-over-TLS mirror (ALPN h2, SNI the mirror's name, its certificate
    verified against tls-ca), :authority suffixed."""
    if not os.path.exists(f"{t.work}/mcert.pem"):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                        "/CN=httpbin-mirror", "-addext", "subjectAltName=DNS:httpbin-mirror",
                        "-keyout", f"{t.work}/mkey.pem", "-out", f"{t.work}/mcert.pem"], check=True,
                       capture_output=True)
    rec = os.path.join(t.work, "h2-tls-mirror.jsonl")
    p = t.lab.spawn(t.mir, [PY, os.path.join(HERE, "h2_recording_server.py"), "--port", "8444", "--record", rec,
                            "--tls-cert", f"{t.work}/mcert.pem", "--tls-key", f"{t.work}/mkey.pem"],
                    stdout=subprocess.PIPE, text=True)
    check(p.stdout.readline().strip() == "ready", "the HTTP/2-over-TLS mirror listens")
    st = Shadowtap(t.lab, t.node, binary, t.node_if, t.work, "--tls",
                   argv=["--interface", t.node_if, "--rule",
                         f"port={H2_PORT},mirror=httpbin-mirror:8444,tls=true,tls-ca={t.work}/mcert.pem"])
    paths = ["/h2tls/a", "/h2tls/b", "/h2tls/c"]
    got = h2_streams_to_mirror(t, paths, rec)
    heads = [dict(g["headers"]) for g in got]
    check(sorted(h.get(":path") for h in heads) == sorted(paths),
          f"the HTTP/2-over-TLS mirror got the 3 streams' requests ({[h.get(':path') for h in heads]})")
    check(all(h.get(":authority") == f"{PRIMARY}-shadow:{H2_PORT}" for h in heads),
          f"... with :authority suffixed ({[h.get(':authority') for h in heads]})")
    check(got and all(g.get("alpn") == "h2" and g.get("sni") == "httpbin-mirror" for g in got),
          f"... over TLS with ALPN h2 and SNI the mirror's name ({[(g.get('alpn'), g.get('sni')) for g in got]})")
    time.sleep(1.5)
    s = st.stats()
    h2 = s.value("shadowtap_mirror_requests_total", protocol="h2", outcome="response_2xx")
    check(h2 == 3, f"the agent counted 3 HTTP/2 responses from the mirror ({h2}; outcomes {s.outcomes()})")
    st.stop()


def as_in_the_daemonset(t, binary):
    """The agent as deploy/tls-patch.yaml runs it: only the DaemonSet's capabilities (a
    bounding set without the rest, as a container has) and the node's libssl.so.3
    bind-mounted read-only at another path in a mount namespace of its own, named by
    --tls-library. Without CAP_SYS_ADMIN the uprobes are refused, and the agent says so;
    with it, a connection through the node's file is followed and mirrored."""
    host_lib = os.path.join(t.work, "host", "libssl.so.3")
    os.makedirs(os.path.dirname(host_lib), exist_ok=True)
    open(host_lib, "w").close()

    def start(caps):
        prefix = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                  f'mount --bind -o ro {LIBSSL} {host_lib} && exec "$@"', "sh",
                  "setpriv", "--bounding-set", "-all," + ",".join("+" + c for c in caps), "--inh-caps", "-all"]
        return Shadowtap(t.lab, t.node, binary, t.node_if, t.work, "--tls", "--tls-library", host_lib, prefix=prefix,
                         argv=["--interface", t.node_if, "--rule", f"port={TLS_PORT},mirror=httpbin-mirror:8000"])

    base, patched = manifest_caps("daemonset.yaml"), manifest_caps("tls-patch.yaml")
    check(sorted(base) == ["bpf", "net_admin", "perfmon"] and sorted(patched) == sorted(base + ["sys_admin"]),
          f"the manifests' capabilities: daemonset.yaml {base}, tls-patch.yaml {patched}")
    try:
        start(base).stop()
        refused = ""
    except RuntimeError as e:
        refused = str(e)
    check("uprobes need CAP_SYS_ADMIN" in refused,
          "with daemonset.yaml's capabilities alone --tls is refused, naming CAP_SYS_ADMIN")
    st = start(patched)
    with open(f"/proc/{st.proc.pid}/status") as f:
        cap_eff = int(re.search(r"^CapEff:\s*([0-9a-f]+)$", f.read(), re.M).group(1), 16)
    check(cap_eff == (1 << 12) | (1 << 21) | (1 << 38) | (1 << 39),
          f"... with tls-patch.yaml's (+ SYS_ADMIN) it runs with exactly those four ({cap_eff:#x})")
    before = len(read_records(t.mirror_rec))
    sent = t.curl("daemonset", urls=("/daemonset",))
    wait_stable(t.mirror_rec, quiet=1.5, timeout=20)
    got = read_records(t.mirror_rec)
    check(got[before:] == [shadow_host(sent[0])],
          "... and a connection through the node's libssl, probed through the bind-mounted path, is mirrored")
    time.sleep(1.5)
    followed = st.stats().value("shadowtap_kernel_tls_connections_total", outcome="followed")
    check(followed == 1, f"... followed by the kernel ({followed})")
    st.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shadowtap", required=True)
    args = ap.parse_args()
    netlab.require_root_or_skip("test_tls")
    for tool in ("nginx", "curl", "openssl", "setpriv", "unshare"):
        if not shutil.which(tool):
            print(f"SKIP: {tool} not installed")
            return 77 if os.environ.get("CI") != "true" else 1
    t = TlsLab()
    try:
        st = start_shadowtap(t, args.shadowtap)
        check(f"reading the OpenSSL plaintext of processes that map" in st.text(), "--tls names the probed library")
        ids = held_tls_programs(st)
        check(ids and len(ids) == len(TLS_PROGRAMS), f"shadowtap holds the {len(TLS_PROGRAMS)} TLS programs ({len(ids)})")
        # Started after shadowtap: covered by the uprobes on the library file.
        t.start_nginx()
        t.start_other()
        t.start_other(PY_PORT)
        t.start_copy_server()

        big = os.path.join(t.work, "big.bin")
        with open(big, "wb") as f:
            f.write(os.urandom(1 << 20))
        chunk_src = os.path.join(t.work, "chunked.bin")
        with open(chunk_src, "wb") as f:
            f.write(b"chunk-body-" * 9000)
        sent = []
        sent += t.curl("keepalive", urls=("/ka/1", "/ka/2?x=1", "/ka/3"))
        sent += t.curl("chunked", "-H", "Transfer-Encoding: chunked", "-H", "Content-Type: application/octet-stream",
                       "--data-binary", f"@{chunk_src}", urls=("/chunked",))
        sent += t.curl("post1m", "-H", "Expect:", "-H", "Content-Type: application/octet-stream",
                       "--data-binary", f"@{big}", urls=("/post/1m",))
        check(len(sent) == 5, f"curl's traces hold the 5 requests it sent ({len(sent)})")
        check(any(b"Transfer-Encoding: chunked" in r and r.endswith(b"0\r\n\r\n") for r in sent),
              "the chunked request went out chunked")
        sent += t.pipelined(3)
        sent += t.s_client(2)
        # The python ssl server (http.server) as a primary: keep-alive and a POST.
        sent += t.curl("python", port=PY_PORT, urls=("/py/1", "/py/2"))
        sent += t.curl("python-post", "--data-binary", "py-post-body", port=PY_PORT, urls=("/py/post",))
        check(len(sent) == 13, f"13 requests sent on 7 connections to the rules' ports ({len(sent)})")
        # Not ours: a TLS server on a port without a rule.
        t.curl("other", port=OTHER_PORT, urls=("/other",))
        # A rule's port, but TLS the probes cannot see: counted and named.
        t.curl("copy", port=COPY_PORT, urls=("/copy",))

        wait_stable(t.mirror_rec, quiet=2.0, timeout=30)
        got = read_records(t.mirror_rec)
        want = [shadow_host(r) for r in sent]
        check(sorted(got) == sorted(want),
              f"the mirror received exactly the {len(want)} plaintext requests, Host rewritten ({len(got)} received)")
        check(not any(b"/other" in r or b"/copy" in r for r in got),
              "nothing of the server outside the rules (or of the unprobed libssl copy) reached the mirror")
        for prefix, n in (("/pipe/", 3), ("/sclient/", 2), ("/py/", 3)):
            want_n = sorted(w for w in want if w.split(b" ", 2)[1].startswith(prefix.encode()))
            got_n = sorted(g for g in got if g.split(b" ", 2)[1].startswith(prefix.encode()))
            check(len(want_n) == n and got_n == want_n,
                  f"{prefix}: the mirror got each of the {n} requests, byte-identical but the host ({len(got_n)})")
        big_got = [r for r in got if r.startswith(b"POST /post/1m ")]
        check(len(big_got) == 1 and big_got[0].endswith(open(big, "rb").read()),
              "the 1 MiB body arrived whole and byte-identical")

        deadline = time.time() + 10  # judged 3 s after the ClientHello, dumped every second
        while time.time() < deadline and st.stats().value("shadowtap_tls_wire_connections_total",
                                                          plaintext="no_plaintext") < 1:
            time.sleep(0.3)
        time.sleep(1.5)  # one more summary interval
        s = st.stats()
        followed = s.value("shadowtap_kernel_tls_connections_total", outcome="followed")
        no_rule = s.value("shadowtap_kernel_tls_connections_total", outcome="no_rule")
        check(followed == 7, "the kernel followed the 7 TLS connections to the rules' ports: curl's 3 to nginx "
              f"(keep-alive's 3 requests on one), the pipelining client's, s_client's, curl's 2 to python ({followed})")
        check(no_rule >= 1, f"the other server's connection was seen and not followed: no_rule ({no_rule})")
        check(s.value("shadowtap_kernel_tls_read_faults_total") == 0, "no plaintext read faults")
        check(s.value("shadowtap_kernel_records_lost_total") == 0, "no records lost")
        check(s.value("shadowtap_tls_wire_connections_total", plaintext="covered") == 7,
              "the 7 connections to nginx and the python server were seen on the wire and covered by plaintext")
        check(s.value("shadowtap_tls_wire_connections_total", plaintext="no_plaintext") == 1 and
              s.value("shadowtap_tls_wire_connections_without_plaintext_total", server=f"{PRIMARY}:{COPY_PORT}") == 1,
              "the connection to the libssl copy is counted as no_plaintext and named by its server")
        check(f"{PRIMARY}:{COPY_PORT} on the wire, but no plaintext" in st.text(), "... and named in the log")
        copied = s.value("shadowtap_kernel_tls_bytes_copied_total")
        check(copied == sum(len(r) for r in sent),
              f"plaintext bytes copied == bytes curl sent ({copied} vs {sum(len(r) for r in sent)})")

        # SIGTERM: everything goes.
        rc = st.stop(signal.SIGTERM)
        check(rc == 0, f"shadowtap exits 0 on SIGTERM ({rc})")
        s = st.stats()  # written at exit, after the probes are gone: their counters stay
        check(s.value("shadowtap_kernel_tls_connections_total", outcome="followed") == 7 and
              s.value("shadowtap_kernel_tls_bytes_copied_total") == copied and
              s.value("shadowtap_tls_wire_connections_total", plaintext="covered") == 7,
              "the stats written at exit still hold the TLS counters (followed, bytes copied, covered)")
        check(gone(ids), "after SIGTERM none of the TLS programs (or their uprobes) is loaded")

        # A connection established before shadowtap starts is not read (a known
        # gap): counted as joined_late, named, and nothing of it is mirrored.
        held = t.lab.spawn(t.cli, [PY, "-c", HELD_CLIENT, PRIMARY, str(TLS_PORT)], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, text=True)
        check(held.stdout.readline().strip() == "connected", "a client connected before the second run")
        # SIGKILL: the links are this process's file descriptors, so they go with it.
        st = start_shadowtap(t, args.shadowtap)
        held.stdin.write("go\n")
        held.stdin.flush()
        check(held.stdout.readline().strip() == "HTTP/1.1 200", "its request is answered by the primary")
        ids = held_tls_programs(st)
        check(len(ids) == len(TLS_PROGRAMS), "a second run holds the TLS programs again")
        before = len(read_records(t.mirror_rec))
        t.curl("second-run", urls=("/second",))
        wait_stable(t.mirror_rec, quiet=1.5, timeout=20)
        got = read_records(t.mirror_rec)
        check(len(got) == before + 1 and got[-1].startswith(b"GET /second "),
              "an nginx started before this run: its new connection is mirrored (probes see every call)")
        deadline = time.time() + 10
        while time.time() < deadline and not st.stats().value("shadowtap_tls_wire_connections_total",
                                                              plaintext="joined_late"):
            time.sleep(0.3)
        check(st.stats().value("shadowtap_tls_wire_connections_total", plaintext="joined_late") == 1,
              "the connection established before the run is counted as joined_late")
        check("was established before the probes were attached" in st.text(), "... and named in the log")
        st.stop(signal.SIGKILL)
        check(gone(ids), "after SIGKILL none of the TLS programs (or their uprobes) is loaded")
        mirror_over_tls(t, args.shadowtap)
        h2_over_tls(t, args.shadowtap)
        h2_to_a_tls_mirror(t, args.shadowtap)
        as_in_the_daemonset(t, args.shadowtap)
    finally:
        t.close()
    return finish("test_tls")


if __name__ == "__main__":
    sys.exit(main())
