#!/usr/bin/env python3
"""docs/configuration.md against the commands' --help, both ways, so they cannot drift:

  - every flag that `shadowtap --help`, `shadowtap replay --help` and
    `shadowtap report --help` list is in that command's flag table, and every flag in a
    table is one its command lists;
  - every rule key that the --rule help names is in the Rules table, and the other way round;
  - the --help introduction names both protocols (HTTP/1.1 and HTTP/2).

A control run removes a row from a copy of the document and adds a made-up one, and
expects both to be reported, so the check cannot pass by reading nothing.

Usage: check_configuration.py --shadowtap PATH --doc docs/configuration.md
"""
import argparse
import re
import subprocess
import sys

# A flag as written in a table cell or in --help: -x or --long-name.
FLAG = re.compile(r"(?<![\w-])(--?[A-Za-z0-9][\w-]*)")
COMMANDS = {"shadowtap": [], "shadowtap replay": ["replay"], "shadowtap report": ["report"]}


def help_text(binary, sub):
    r = subprocess.run([binary, *sub, "--help"], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise SystemExit(f"FAIL: {' '.join(['shadowtap', *sub])} --help exited with {r.returncode}")
    return r.stdout + r.stderr


def option_lines(text):
    """CLI11's option listing: (flags, description) per option, continuation lines joined."""
    options = []
    section = None
    for line in text.splitlines():
        if re.match(r"^\S.*:\s*$", line):  # "Options:", "Positionals:"
            section = line.strip().rstrip(":").lower()
            continue
        if section != "options" or not line.strip():
            continue
        # "  -i,--interface TEXT ...", "  --no-adaptive-wakeups{false}", "  --speed FLOAT=1"
        m = re.match(r"^\s{1,4}((?:--?[A-Za-z0-9][\w-]*,)*--?[A-Za-z0-9][\w-]*)(?=[\s{=]|$)(.*)$", line)
        if m:
            options.append([set(m.group(1).split(",")), m.group(2)])
        elif options:
            options[-1][1] += " " + line.strip()
    return options


def help_flags(text):
    """Flags a --help lists: CLI11's Options section, or else the bracketed items of a
    hand-written `usage:` line."""
    options = option_lines(text)
    if options:
        return set().union(*(flags for flags, _ in options))
    flags = set()
    for line in text.splitlines():
        if line.lower().startswith("usage:"):
            for item in re.findall(r"\[([^\]]*)\]", line):
                flags |= {f for f in FLAG.findall(item) if f.startswith("-")}
    return flags


def rule_keys_of_help(text):
    for flags, desc in option_lines(text):
        if "--rule" in flags:
            return set(re.findall(r"(?<![\w-])([a-z][a-z-]*)=", desc))
    return set()


def doc_sections(doc):
    """'## heading' -> the first cells of its table rows."""
    sections, current = {}, None
    for line in doc.splitlines():
        if line.startswith("## "):
            current = line[3:].strip()
            sections[current] = []
        elif current and line.startswith("| `"):
            sections[current].append(line.split("|")[1].strip())
    return sections


def cell_flags(cells):
    flags = set()
    for cell in cells:
        for code in re.findall(r"`([^`]*)`", cell):
            flags |= {f for f in FLAG.findall(code) if code.lstrip().startswith("-")}
    return flags


def compare(helps, doc):
    """Every difference between the help texts and the document, as lines."""
    problems = []
    sections = doc_sections(doc)
    for command, text in helps.items():
        heading = f"`{command}` flags"
        if heading not in sections:
            problems.append(f"docs: no section '## {heading}'")
            continue
        in_help, in_doc = help_flags(text), cell_flags(sections[heading])
        if not in_help:
            problems.append(f"{command} --help: no flags found (has its format changed?)")
        for f in sorted(in_help - in_doc):
            problems.append(f"{command}: {f} is in --help but not in the doc's table")
        for f in sorted(in_doc - in_help):
            problems.append(f"{command}: {f} is in the doc's table but not in --help")
    keys_help = rule_keys_of_help(helps["shadowtap"])
    keys_doc = {re.match(r"`([a-z-]+)=", c).group(1) for c in sections.get("Rules", []) if re.match(r"`[a-z-]+=", c)}
    if not keys_help:
        problems.append("shadowtap --help: the --rule help names no keys")
    for k in sorted(keys_help - keys_doc):
        problems.append(f"rule key {k}= is in the --rule help but not in the Rules table")
    for k in sorted(keys_doc - keys_help):
        problems.append(f"rule key {k}= is in the Rules table but not in the --rule help")
    return problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shadowtap", required=True)
    ap.add_argument("--doc", required=True)
    args = ap.parse_args()
    helps = {command: help_text(args.shadowtap, sub) for command, sub in COMMANDS.items()}
    with open(args.doc) as f:
        doc = f.read()
    failures = []

    intro = helps["shadowtap"].split("Usage:")[0]
    if "HTTP/1.1" not in intro or "HTTP/2" not in intro:
        failures.append(f"shadowtap --help's introduction should name HTTP/1.1 and HTTP/2: {intro.strip()!r}")

    problems = compare(helps, doc)
    failures += problems
    counts = {c: len(help_flags(t)) for c, t in helps.items()}
    print("flags in --help: " + ", ".join(f"{c} {n}" for c, n in counts.items())
          + f"; rule keys {len(rule_keys_of_help(helps['shadowtap']))}")

    # Control: a copy without the --interface row and with a made-up flag must fail twice.
    broken = re.sub(r"^\| `-i, --interface IF`.*\n", "", doc, count=1, flags=re.M)
    broken = broken.replace("| `--version` |", "| `--no-such-flag N` | | made up |\n| `--version` |", 1)
    found = compare(helps, broken)
    want = ["shadowtap: --interface is in --help but not in the doc's table",
            "shadowtap: --no-such-flag is in the doc's table but not in --help"]
    if broken == doc or any(w not in found for w in want):
        failures.append(f"control: a broken copy of the doc was not caught (got {found})")
    else:
        print("control: a removed and a made-up flag are both reported")

    for f in failures:
        print("FAIL  " + f)
    if failures:
        print(f"docs_configuration: {len(failures)} problems; fix docs/configuration.md or the --help text")
        return 1
    print("docs_configuration: docs/configuration.md matches every --help")
    return 0


if __name__ == "__main__":
    sys.exit(main())
