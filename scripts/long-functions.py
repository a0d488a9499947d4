#!/usr/bin/env python3
"""Agent source files over ~600 lines and functions over ~80 (issue #15's bound).

  scripts/long-functions.py            list them, longest first
  scripts/long-functions.py --check    the same, exit 1 when one is not in ALLOWED

Function extents come from Universal Ctags (Debian's universal-ctags, `end:` field),
so a function is counted from its signature's line to its closing brace, comments
and blank lines included. Lambdas count within their function.
"""

import argparse
import os
import subprocess
import sys

MAX_FILE_LINES = 600
MAX_FUNCTION_LINES = 80

# Exceptions, each with its reason. Keep this list short: split instead.
ALLOWED = set()


def functions(root, paths):
    out = subprocess.run(
        ["ctags", "--languages=C++", "--kinds-C++=f", "--fields=+ne", "-o", "-", "-R"] + paths,
        cwd=root, check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        cols = line.split("\t")
        fields = dict(c.split(":", 1) for c in cols[3:] if ":" in c)
        if "line" in fields and "end" in fields:
            yield cols[1], cols[0], int(fields["line"]), int(fields["end"]) - int(fields["line"]) + 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="exit 1 on anything over the bounds not in ALLOWED")
    ap.add_argument("--root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    args = ap.parse_args()
    root = os.path.abspath(args.root)

    long_files = []
    for dirpath, _, names in os.walk(os.path.join(root, "agent")):
        for name in names:
            if name.endswith((".cc", ".h")):
                path = os.path.join(dirpath, name)
                with open(path, encoding="utf-8", errors="replace") as f:
                    n = sum(1 for _ in f)
                if n > MAX_FILE_LINES:
                    long_files.append((n, os.path.relpath(path, root)))
    long_functions = sorted(((n, path, name, line) for path, name, line, n in functions(root, ["agent"])
                             if n > MAX_FUNCTION_LINES), reverse=True)

    bad = 0
    for n, path in sorted(long_files, reverse=True):
        print(f"file     {n:5d} lines  {path}")
        bad += 1
    for n, path, name, line in long_functions:
        allowed = (path, name) in ALLOWED
        print(f"function {n:5d} lines  {path}:{line} {name}{'  (allowed)' if allowed else ''}")
        bad += 0 if allowed else 1
    if args.check and bad:
        print(f"{bad} over the bounds ({MAX_FILE_LINES} lines a file, {MAX_FUNCTION_LINES} a function): "
              "split them, or add an exception with its reason to ALLOWED in this script", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
