#!/usr/bin/env python3
"""`shadowtap report` in a real browser: renders a report from a generated
DIFFS.jsonl, loads it in headless Debian Chromium, and checks what the page
shows after its script ran: the two regressions named (a status on one endpoint,
a body field on another), the timestamp field of a third endpoint marked as
noise and not as a regression, endpoints sorted by difference rate. The
screenshot and the rendered DOM are kept in --out.

Usage: test_compare_report.py --shadowtap PATH [--report-tool PATH] --out DIR
       (--report-tool runs `TOOL DIFFS -o HTML` instead of `shadowtap report ...`)
Exits 77 (skip) when Chromium is not installed, unless CI=true.
"""
import argparse
import html.parser
import json
import os
import shutil
import subprocess
import sys
import tempfile

SKIP = 77


class Page(html.parser.HTMLParser):
    """The parts of the report the test looks at, from the DOM Chromium dumped."""

    def __init__(self):
        super().__init__()
        self.ready = False
        self.sections = []  # dicts: endpoint, regression, regressions[], noisy[]
        self.list_kind = None  # "regressions" / "noisy-fields" while inside such a <ul>

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "html" and a.get("data-report-ready") == "yes":
            self.ready = True
        if tag == "section" and "endpoint" in a.get("class", "").split():
            self.sections.append({"endpoint": a.get("data-endpoint"),
                                  "regression": a.get("data-regression") == "true",
                                  "regressions": [], "noisy": []})
        if tag == "ul" and self.sections:
            cls = a.get("class", "")
            self.list_kind = cls if cls in ("regressions", "noisy-fields") else None
        if tag == "li" and self.list_kind and self.sections:
            key = "regressions" if self.list_kind == "regressions" else "noisy"
            self.sections[-1][key].append(a.get("data-field"))

    def handle_endtag(self, tag):
        if tag == "ul":
            self.list_kind = None


def response(status, body, extra=()):
    return {"status": status, "headers": [["Content-Type", "application/json"], *extra],
            "body": body, "body_length": len(body), "body_truncated": False}


def diff_line(endpoint, target, outcome, differences, noisy_fields, primary, mirror):
    return {"type": "diff", "time": "2024-05-01T12:00:00.000Z", "rule": 1, "endpoint": endpoint,
            "method": "GET", "target": target, "outcome": outcome, "json": True,
            "differences": differences, "differences_omitted": 0, "noisy_fields": noisy_fields,
            "primary": primary, "mirror": mirror}


def generate(path):
    """v1 (primary) against v2 (mirror): /orders answers 500 in v2, /users renames a
    field value in v2, /time returns a timestamp that differs on every call."""
    lines = []
    for i in range(3):
        lines.append(diff_line("GET /orders/{n}", f"/orders/{i}", "different",
                               [{"path": "status", "field": "status", "primary": "200", "mirror": "500",
                                 "noisy": False}], [],
                               response(200, '{"order":%d}' % i), response(500, '{"error":"boom"}')))
    lines.append(diff_line("GET /users/{n}", "/users/7", "different",
                           [{"path": "$.name", "field": "$.name", "primary": '"ann"', "mirror": '"Ann"',
                             "noisy": False}], [],
                           response(200, '{"id":7,"name":"ann"}'), response(200, '{"id":7,"name":"Ann"}')))
    for i in range(2):
        lines.append(diff_line("GET /time", "/time", "noisy",
                               [{"path": "$.timestamp", "field": "$.timestamp", "primary": '"%d"' % (100 + i),
                                 "mirror": '"%d"' % (300 + i), "noisy": True}], ["$.timestamp"],
                               response(200, '{"timestamp":"%d"}' % (100 + i)),
                               response(200, '{"timestamp":"%d"}' % (300 + i))))
    for endpoint, compared, equal, different, noisy in (("GET /orders/{n}", 3, 0, 3, 0),
                                                       ("GET /users/{n}", 8, 7, 1, 0),
                                                       ("GET /time", 2, 0, 0, 2),
                                                       ("GET /health", 5, 5, 0, 0)):
        lines.append({"type": "summary", "rule": 1, "endpoint": endpoint, "compared": compared,
                      "equal": equal, "different": different, "noisy": noisy})
    with open(path, "w") as f:
        for line in lines:
            f.write(json.dumps(line) + "\n")


def chromium():
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


def run_browser(browser, profile, *args):
    # Everything that would reach the network off: the page is a local file and
    # must need nothing else.
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
           "--disable-default-apps", f"--user-data-dir={profile}", "--virtual-time-budget=3000", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shadowtap")
    ap.add_argument("--report-tool")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    browser = chromium()
    if browser is None:
        print("compare report: chromium is not installed (scripts/install-deps.sh --browser); skipping")
        return 1 if os.environ.get("CI") == "true" else SKIP
    os.makedirs(a.out, exist_ok=True)
    diffs = os.path.join(a.out, "diffs.jsonl")
    report = os.path.join(a.out, "report.html")
    generate(diffs)
    cmd = [a.report_tool] if a.report_tool else [a.shadowtap, "report"]
    r = subprocess.run([*cmd, diffs, "-o", report], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        print(f"FAIL  report command: rc={r.returncode} stderr={r.stderr.strip()!r}")
        return 1

    failures = []

    def check(ok, what):
        print(("ok    " if ok else "FAIL  ") + what)
        if not ok:
            failures.append(what)

    with open(report) as f:
        text = f.read()
    check("http://" not in text and "https://" not in text and " src=" not in text,
          "the page is self-contained (no URL, no external resource)")

    profile = tempfile.mkdtemp(prefix="st-chromium-")
    try:
        url = "file://" + os.path.abspath(report)
        dom = run_browser(browser, profile, "--dump-dom", url)
        check(dom.returncode == 0 and "<section" in dom.stdout, f"chromium --dump-dom (rc={dom.returncode})")
        with open(os.path.join(a.out, "report.dom.html"), "w") as f:
            f.write(dom.stdout)
        shot = os.path.join(a.out, "report.png")
        if os.path.exists(shot):
            os.remove(shot)
        s = run_browser(browser, profile, f"--screenshot={shot}", "--window-size=1280,2400",
                        "--hide-scrollbars", url)
        ok = s.returncode == 0 and os.path.exists(shot)
        if ok:
            with open(shot, "rb") as f:
                ok = f.read(8) == b"\x89PNG\r\n\x1a\n" and os.path.getsize(shot) > 10000
        check(ok, f"screenshot saved as {shot}")
    finally:
        shutil.rmtree(profile, ignore_errors=True)

    page = Page()
    page.feed(dom.stdout)
    check(page.ready, "the page's script ran")
    order = [s["endpoint"] for s in page.sections]
    check(order == ["GET /orders/{n}", "GET /users/{n}", "GET /health", "GET /time"],
          f"endpoints by difference rate: {order}")
    regressions = {s["endpoint"]: s["regressions"] for s in page.sections if s["regression"]}
    check(regressions == {"GET /orders/{n}": ["status"], "GET /users/{n}": ["$.name"]},
          f"exactly the two regressions are named: {regressions}")
    time = next((s for s in page.sections if s["endpoint"] == "GET /time"), None)
    check(time is not None and time["noisy"] == ["$.timestamp"] and not time["regressions"] and not time["regression"],
          f"the timestamp is marked as noise, not as a regression: {time}")
    print("compare report: all checks passed" if not failures else f"compare report: {len(failures)} checks failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
