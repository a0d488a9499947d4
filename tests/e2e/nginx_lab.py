"""The lab of the HTTP/1 framing tests (issue 17): nginx as the primary, a mirror
that records raw bytes, shadowtap in between, and what each side accepted.

  cli (198.18.0.1) --veth-- node (198.18.0.2; nginx :8000, its backend :9001; shadowtap)
                            node (198.18.1.1) --veth-- mir (198.18.1.2; raw_mirror.py :8000)

nginx logs every request it read, with what it took it for: the request line,
the Host field, the bytes it consumed for the request ($request_length, head and
body as framed on the wire) and the body it decoded (proxied to its own backend,
so it reads it whole). A request nginx refuses gets a 4xx/5xx and the
connection is closed.
"""
import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
import time

import netlab
from harness import HERE, PY, PORT, Shadowtap, read_records

PRIMARY = "198.18.0.2"
SUFFIX = b"-shadow"
DESTINATION = f"{PRIMARY}:{PORT}".encode()  # what an HTTP/1.0 request without Host gets

NGINX_CONF = """
daemon off;
master_process off;
user root;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log info;
events {{ worker_connections 512; }}
http {{
  client_body_temp_path {work}/nginx-tmp/body;
  proxy_temp_path {work}/nginx-tmp/proxy;
  fastcgi_temp_path {work}/nginx-tmp/fastcgi;
  uwsgi_temp_path {work}/nginx-tmp/uwsgi;
  scgi_temp_path {work}/nginx-tmp/scgi;
  # Tab-separated; nginx writes '"', '\\', bytes < 0x20 and > 0x7e as \\xXX.
  log_format st17 '$status\\t$request_length\\t$request\\t$http_host\\t$http_x_case\\t$request_body\\t$connection';
  client_body_buffer_size 1m;
  client_body_in_single_buffer on;
  server {{
    listen {primary}:{port};
    access_log {work}/nginx-access.log st17;
    location / {{
      proxy_pass http://{primary}:9001;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
  server {{
    listen {primary}:9001;
    access_log off;
    location / {{ return 200 "ok\\n"; }}
  }}
}}
"""


def unescape(field: bytes) -> bytes:
    return re.sub(rb"\\x([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]), field)


class NginxLab:
    def __init__(self, prefix="sth"):
        if shutil.which("nginx") is None:
            raise RuntimeError("nginx not found (scripts/install-deps.sh installs nginx-light)")
        self.lab = netlab.Lab(prefix)
        self.workdir = tempfile.mkdtemp(prefix="st-http1-")
        lab = self.lab
        self.cli, self.node, self.mir = lab.netns("cli"), lab.netns("node"), lab.netns("mir")
        _, self.node_if = lab.link(self.cli, self.node, ["198.18.0.1/24"], [f"{PRIMARY}/24"], "c")
        lab.link(self.node, self.mir, ["198.18.1.1/24"], ["198.18.1.2/24"], "m")
        lab.hosts_file(self.node, {"httpbin-mirror": "198.18.1.2"})
        os.makedirs(os.path.join(self.workdir, "nginx-tmp"))
        conf = os.path.join(self.workdir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(work=self.workdir, primary=PRIMARY, port=PORT))
        self.access_log = os.path.join(self.workdir, "nginx-access.log")
        self.nginx = lab.spawn(self.node, ["nginx", "-c", conf, "-p", self.workdir, "-e",
                                           os.path.join(self.workdir, "nginx-error.log")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        self.mirror_rec = os.path.join(self.workdir, "mirror.jsonl")
        p = lab.spawn(self.mir, [PY, os.path.join(HERE, "raw_mirror.py"), "--port", str(PORT),
                                 "--record", self.mirror_rec], stdout=subprocess.PIPE, text=True)
        if p.stdout.readline().strip() != "ready":
            raise RuntimeError("raw mirror did not start")
        deadline = time.time() + 10
        while not self._listening():
            if self.nginx.poll() is not None or time.time() > deadline:
                raise RuntimeError("nginx did not start: " + self._error_log())
            time.sleep(0.1)

    def _listening(self):
        out = self.lab.run(self.node, ["ss", "-ltnH", f"sport = :{PORT}"], capture_output=True, text=True).stdout
        return bool(out.strip())

    def _error_log(self):
        try:
            with open(os.path.join(self.workdir, "nginx-error.log")) as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def shadowtap(self, binary, *extra):
        return Shadowtap(self.lab, self.node, binary, self.node_if, self.workdir, *extra)

    def send(self, cases, parallel=8):
        """cases: [(id, raw bytes, bytewise)] -> {id: (statuses, bytes sent)}: nginx may
        close a connection before a client sending byte by byte is done."""
        path = os.path.join(self.workdir, f"cases-{time.monotonic_ns()}.json")
        out = path + ".out"
        with open(path, "w") as f:
            json.dump([{"id": i, "raw": base64.b64encode(raw).decode(), "bytewise": bw} for i, raw, bw in cases], f)
        r = self.lab.run(self.cli, [PY, os.path.join(HERE, "raw_client.py"), "--addr", PRIMARY, "--port", str(PORT),
                                    "--cases", path, "--out", out, "--parallel", str(parallel)], timeout=600)
        if r.returncode != 0:
            raise RuntimeError(f"raw_client failed with {r.returncode}")
        with open(out) as f:
            return {c["id"]: (c["statuses"], c["sent"]) for c in json.load(f)}

    def nginx_log(self):
        """What nginx read: [{status, length, request, host, case, body}] (bytes; None when absent)."""
        entries = []
        if not os.path.exists(self.access_log):
            return entries
        with open(self.access_log, "rb") as f:
            for line in f:
                fields = line.rstrip(b"\n").split(b"\t")
                if len(fields) < 7:
                    continue
                none = lambda v: None if v == b"-" else unescape(v)  # noqa: E731
                entries.append({"status": int(fields[0]), "length": int(fields[1]), "request": unescape(fields[2]),
                                "host": none(fields[3]), "case": none(fields[4]),
                                "body": none(fields[5]) or b"", "conn": fields[6].decode()})
        return entries

    def mirror_got(self):
        return read_records(self.mirror_rec)

    def close(self):
        self.lab.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


# --- what a mirrored request was before the rewrite, found without shadowtap's code

def head_lines(raw: bytes):
    """The head's lines with their ends, and where the body starts; None if no blank line."""
    lines, pos = [], 0
    while True:
        nl = raw.find(b"\n", pos)
        if nl < 0:
            return None, None
        line = raw[pos:nl + 1]
        pos = nl + 1
        if line in (b"\r\n", b"\n"):
            return lines, pos
        lines.append(line)


def strip_eol(line: bytes) -> bytes:
    return line[:-2] if line.endswith(b"\r\n") else line[:-1] if line.endswith(b"\n") else line


def split_port(host: bytes):
    colon = host.rfind(b":")
    if colon < 0 or host.rfind(b"]") > colon:
        return host, b""
    return host[:colon], host[colon:]


def unsuffix_host(value: bytes):
    """'app-shadow:8000' -> 'app:8000'; None when the suffix is not there."""
    name, port = split_port(value)
    if not name.endswith(SUFFIX):
        return None
    return name[:-len(SUFFIX)] + port


def authority_span(target: bytes):
    """(start, end) of the host[:port] of an absolute-form target (after any userinfo), or None."""
    if target.startswith(b"/") or target == b"*":
        return None
    scheme = target.find(b"://")
    if scheme <= 0:
        return None
    start = scheme + 3
    end = len(target)
    for sep in (b"/", b"?", b"#"):
        i = target.find(sep, start)
        if i >= 0:
            end = min(end, i)
    at = target.rfind(b"@", start, end)
    return (at + 1 if at >= 0 else start), end


def unsuffix_target(target: bytes):
    """The absolute-form target with the suffix taken out of its host (others as
    they are); None when the suffix is missing."""
    span = authority_span(target)
    if span is None:
        return target
    plain = unsuffix_host(target[span[0]:span[1]])
    if plain is None:
        return None
    return target[:span[0]] + plain + target[span[1]:]


def header(lines, name: bytes):
    """Values of the fields named exactly `name` (case-insensitive)."""
    out = []
    for line in lines:
        n, colon, v = strip_eol(line).partition(b":")
        if colon and n.lower() == name:
            out.append(v.strip(b" \t"))
    return out


def decode_body(lines, rest: bytes):
    """The body by the request's own framing, strictly; None when `rest` is not exactly one body."""
    te = header(lines, b"transfer-encoding")
    if te:
        if len(te) != 1 or te[0].lower() != b"chunked":
            return None
        body, pos = b"", 0
        while True:
            eol = rest.find(b"\r\n", pos)
            if eol < 0:
                return None
            size_text = rest[pos:eol].split(b";")[0]
            try:
                size = int(size_text, 16)
            except ValueError:
                return None
            pos = eol + 2
            if size == 0:
                break
            body += rest[pos:pos + size]
            if rest[pos + size:pos + size + 2] != b"\r\n":
                return None
            pos += size + 2
        while True:  # trailers, then the empty line
            eol = rest.find(b"\r\n", pos)
            if eol < 0:
                return None
            line = rest[pos:eol]
            pos = eol + 2
            if not line:
                return body if pos == len(rest) else None
    cl = header(lines, b"content-length")
    if not cl:
        return b"" if not rest else None
    if len(cl) != 1 or not cl[0].isdigit() or int(cl[0]) != len(rest):
        return None
    return rest


def as_primary_saw(raw: bytes, inserted_host: bool):
    """(request bytes before the rewrite, request line, Host value or None, X-Case, body),
    or a string saying why `raw` is not a rewritten request."""
    lines, body_at = head_lines(raw)
    if lines is None:
        return "no blank line ending the head"
    line = strip_eol(lines[0])
    parts = line.split()
    if len(parts) != 3:
        return "request line is not METHOD SP target SP version"
    target = unsuffix_target(parts[1])
    if target is None:
        return "absolute-form target without the suffix"
    lines[0] = lines[0].replace(parts[1], target, 1)
    line = strip_eol(lines[0])
    host = None
    if inserted_host:
        # An HTTP/1.0 request without Host: shadowtap adds one as the first
        # field, naming the target's authority or else where it was sent.
        span = authority_span(target)
        name, port = split_port(target[span[0]:span[1]] if span else DESTINATION)
        want = b"Host: " + name + SUFFIX + port + b"\r\n"
        if len(lines) < 2 or lines[1] != want or not line.endswith(b"HTTP/1.0"):
            return f"expected {want!r} added after the request line"
        del lines[1]
    else:
        hosts = [i for i, l in enumerate(lines[1:], 1) if strip_eol(l).partition(b":")[0].lower() == b"host"]
        if len(hosts) != 1:
            return "not exactly one Host field"
        i = hosts[0]
        value = strip_eol(lines[i]).partition(b":")[2].strip(b" \t")
        host = unsuffix_host(value)
        if host is None:
            return "Host without the suffix"
        lines[i] = lines[i].replace(value, host, 1)
    cases = header(lines[1:], b"x-case")
    rest = raw[body_at:]
    body = decode_body(lines[1:], rest)
    if body is None:
        return "the body is not exactly what its head announces"
    blank = raw[body_at - 2:body_at] if raw[body_at - 2:body_at] == b"\r\n" else b"\n"
    return (b"".join(lines) + blank + rest, line, host, cases[0] if len(cases) == 1 else None, body)
