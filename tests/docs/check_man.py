#!/usr/bin/env python3
"""The man pages: generated at build time by help2man from each command's --help, and
installed by `cmake --install`. Installs the build into a temporary prefix and checks
that bin/shadowtap and share/man/man1/shadowtap{,-replay,-report}.1 are there, that each
page is a man page named after its command, and that it lists every flag of that
command's --help (so a page generated from an old binary is caught too).

Without the pages (help2man was missing at configure time) it skips (77), except under
CI=true, where it fails.

Usage: check_man.py --build-dir BUILD --shadowtap PATH
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_configuration import COMMANDS, help_flags, help_text  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--shadowtap", required=True)
    args = ap.parse_args()
    if not os.path.exists(os.path.join(args.build_dir, "docs", "shadowtap.1")):
        msg = "no man pages in the build: help2man was missing when it was configured (scripts/install-deps.sh)"
        if os.environ.get("CI") == "true":
            print(f"FAIL: {msg}, and CI=true forbids skipping")
            return 1
        print(f"SKIP: {msg}")
        return 77
    prefix = tempfile.mkdtemp(prefix="st-install-")
    failures = []
    try:
        r = subprocess.run(["cmake", "--install", args.build_dir, "--prefix", prefix],
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            print(r.stdout + r.stderr)
            return 1
        if not os.access(os.path.join(prefix, "bin", "shadowtap"), os.X_OK):
            failures.append("bin/shadowtap was not installed")
        for command, sub in COMMANDS.items():
            page = command.replace(" ", "-")
            path = os.path.join(prefix, "share", "man", "man1", page + ".1")
            if not os.path.exists(path):
                failures.append(f"{path} was not installed")
                continue
            with open(path) as f:
                text = f.read().replace("\\-", "-").replace("\\fB", "").replace("\\fR", "").replace("\\fI", "")
            if not re.search(rf'^\.TH {re.escape(page.upper())} "?1"? ', text, re.M):
                failures.append(f"{page}.1 has no '.TH {page.upper()} 1' header")
            if not re.search(rf"^{re.escape(page)} - \S", text, re.M):
                failures.append(f"{page}.1 has no NAME line '{page} - ...'")
            flags = help_flags(help_text(args.shadowtap, sub))
            missing = sorted(f for f in flags if not re.search(rf"(?<![\w-]){re.escape(f)}(?![\w-])", text))
            if missing:
                failures.append(f"{page}.1 lacks flags of `{command} --help`: {' '.join(missing)}")
            print(f"{page}.1: {len(flags)} flags of --help, {len(flags) - len(missing)} in the page")
    finally:
        shutil.rmtree(prefix, ignore_errors=True)
    for f in failures:
        print("FAIL  " + f)
    print("docs_man: " + (f"{len(failures)} problems" if failures else "installed and complete"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
