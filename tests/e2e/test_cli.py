#!/usr/bin/env python3
"""Startup errors: every bad flag or environment problem gives one line on stderr
that says what is wrong, and a non-zero exit, before anything is attached.

Usage: test_cli.py --shadowtap PATH
"""
import argparse
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netlab  # noqa: E402

FAILURES = []
NS = None


def case(binary, args, want_rc, want_text, prefix=()):
    r = subprocess.run(["ip", "netns", "exec", NS, *prefix, binary, *args],
                       capture_output=True, text=True, timeout=30)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    ok = r.returncode == want_rc and len(lines) == 1 and want_text in lines[0]
    print(("ok    " if ok else "FAIL  ") + f"{' '.join(args)!r}: rc={r.returncode} stderr={r.stderr.strip()!r}")
    if not ok:
        FAILURES.append(args)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shadowtap", required=True)
    b = ap.parse_args().shadowtap
    netlab.require_root_or_skip("the startup error test")
    # A namespace of our own: only lo, and a resolver that cannot reach anything,
    # so the unresolvable-name case sends nothing off the machine.
    global NS
    lab = netlab.Lab()
    NS = lab.netns("cli")
    lab.hosts_file(NS, {})

    case(b, ["-i", "lo", "-m", "127.0.0.1:9"], 2, "--port is required")
    case(b, ["-i", "lo", "-p", "70000", "-m", "127.0.0.1:9"], 2, "--port")
    case(b, ["-i", "lo", "-p", "8000", "-m", "mirror"], 2, "expected host:port")
    case(b, ["-i", "lo", "-p", "8000", "-m", "mirror:0"], 2, "1 to 65535")
    case(b, ["-i", "lo", "-p", "8000", "-m", "127.0.0.1:9", "--mirror-percentage", "101"], 2,
         "--mirror-percentage")
    case(b, ["-i", "lo", "-p", "8000", "-m", "127.0.0.1:9", "--shadow-suffix", "a b"], 2, "--shadow-suffix")
    case(b, ["-i", "lo", "-p", "8000", "-m", "127.0.0.1:9", "--ring-buffer-mib", "3"], 2, "power of two")
    case(b, ["-i", "lo", "-p", "8000", "-m", "127.0.0.1:9", "--bogus"], 2, "--bogus")
    case(b, ["-i", "st-no-such-if0", "-p", "8000", "-m", "127.0.0.1:9"], 1, "unknown interface 'st-no-such-if0'")
    case(b, ["-i", "lo", "-p", "8000", "-m", "no-such-host.invalid:80"], 1, "cannot resolve 'no-such-host.invalid'")
    # Kafka recording: the URL and flags at parse time, librdkafka's refusals at start.
    case(b, ["-i", "lo", "-p", "8000", "--record", "kafka://127.0.0.1:9"], 2, "no topic")
    case(b, ["-i", "lo", "-p", "8000", "--record", "kafka://127.0.0.1:9/a b"], 2, "not a Kafka topic name")
    case(b, ["-i", "lo", "-p", "8000", "--record", "/tmp/x.jsonl", "--record-kafka-acks", "1"], 2,
         "--record-kafka-* need a Kafka recording")
    case(b, ["-i", "lo", "-p", "8000", "--record", "kafka://127.0.0.1:9/t", "--record-kafka-opt", "linger.ms"], 2,
         "write KEY=VALUE")
    case(b, ["-i", "lo", "-p", "8000", "--record", "kafka://127.0.0.1:9/t", "--record-kafka-compression", "brotli"],
         2, "--record-kafka-compression")
    case(b, ["-i", "lo", "-p", "8000", "--record", "kafka://127.0.0.1:9/t", "--record-kafka-opt", "no.such.property=1"],
         1, "--record-kafka-opt no.such.property: No such configuration property")
    case(b, ["-i", "lo", "-p", "8000", "-m", "127.0.0.1:9"], 1, "missing privileges",
         prefix=("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"))
    lab.close()
    print("cli: all checks passed" if not FAILURES else f"cli: {len(FAILURES)} checks failed")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
