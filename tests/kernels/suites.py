#!/usr/bin/env python3
"""The kernel matrix's suites: which CTest tests run in the guest, how, and what came out.

  suites.py plan BUILD_DIR OUT SUITE...   writes OUT/SUITE.sh (run by guest.sh) and OUT/SUITE.plan
  suites.py report OUT SUITE...           one line per suite; the output of what failed; exit 1 if
                                          anything failed, skipped, or did not run

A suite is a CTest selection, so tests added under a label join it. Its tests run
as CTest would run them (command, working directory), except that the tests one
GoogleTest binary contributes run in one process with a joined --gtest_filter:
under TCG, starting ctest and a process per test cost as much as the tests.
"""
import json
import os
import re
import shlex
import subprocess
import sys

SUITES = {
    "bpf": ["-L", "^bpf$"],                              # the programs through bpf_prog_test_run
    "capture-ns": ["-L", "^capture-ns$"],                # attach modes, coexistence (XDP too), egress
    "e2e": ["-R", "^e2e_(mirror|compare)$"],             # mirror, percentage, tc SIGKILL, tcx, compare
}
STEP_TIMEOUT_S = 600
GTEST_FILTER = "--gtest_filter="


def plan(build, out, suite):
    if suite not in SUITES:
        sys.exit(f"suites.py: unknown suite {suite} (known: {' '.join(SUITES)})")
    shown = subprocess.run(["ctest", "--test-dir", build, "--show-only=json-v1", *SUITES[suite]],
                           check=True, capture_output=True, text=True).stdout
    steps = []          # [kind, workdir, argv, names]
    gtest_steps = {}    # (binary, workdir) -> step
    for test in json.loads(shown)["tests"]:
        props = {p["name"]: p["value"] for p in test.get("properties", [])}
        argv, workdir = test["command"], props.get("WORKING_DIRECTORY", build)
        filters = [a for a in argv if a.startswith(GTEST_FILTER)]
        if filters:
            key = (argv[0], workdir)
            if key not in gtest_steps:
                gtest_steps[key] = ["gtest", workdir, [argv[0], "--gtest_also_run_disabled_tests"], []]
                steps.append(gtest_steps[key])
            gtest_steps[key][3].append(filters[0][len(GTEST_FILTER):])
        else:
            steps.append(["script", workdir, argv, [test["name"]]])
    if not steps:
        sys.exit(f"suites.py: ctest {' '.join(SUITES[suite])} selects no test in {build}")
    with open(os.path.join(out, f"{suite}.sh"), "w") as sh, open(os.path.join(out, f"{suite}.plan"), "w") as pl:
        for i, (kind, workdir, argv, names) in enumerate(steps):
            if kind == "gtest":
                argv = argv + [GTEST_FILTER + ":".join(names)]
            log = f'"$OUT"/{shlex.quote(f"{suite}.{i}")}'   # $OUT: where guest.sh mounted the share
            sh.write(f"cd {shlex.quote(workdir)} && timeout -k 5 {STEP_TIMEOUT_S} {shlex.join(argv)} "
                     f">{log}.log 2>&1; echo $? >{log}.rc\n")
            json.dump({"kind": kind, "names": names, "argv": argv}, pl)
            pl.write("\n")


# One line per finished test: "[       OK ] Suite.Name (12 ms)".
# A parameterised test's failure line adds ", where GetParam() = ..." before the time.
GTEST_RESULT = re.compile(r"^\[ +(OK|SKIPPED|FAILED) +\] (\S+?)(?:, where .*)? \(\d+ ms\)$", re.M)


def report(out, suite):
    """(passed, failed, skipped, problems): problems are lines saying what went wrong."""
    passed, failed, skipped, problems = 0, 0, 0, []
    with open(os.path.join(out, f"{suite}.plan")) as f:
        steps = [json.loads(line) for line in f]
    for i, step in enumerate(steps):
        base = os.path.join(out, f"{suite}.{i}")
        try:
            rc = int(open(base + ".rc").read())
            log = open(base + ".log", errors="replace").read()
        except (OSError, ValueError):
            failed += len(step["names"])
            problems.append(f"{shlex.join(step['argv'])}: did not run to the end")
            continue
        if step["kind"] == "script":
            name = step["names"][0]
            if rc == 0:
                passed += 1
                continue
            skipped, failed = skipped + (rc == 77), failed + (rc != 77)
            problems.append(f"{name}: {'skipped (77)' if rc == 77 else f'exit {rc}'}\n{log}")
            continue
        results = {name: outcome for outcome, name in GTEST_RESULT.findall(log)}
        p = sum(1 for o in results.values() if o == "OK")
        s = sum(1 for o in results.values() if o == "SKIPPED")
        missing = [n for n in step["names"] if n not in results]
        passed, skipped = passed + p, skipped + s
        failed += len(step["names"]) - p - s
        if rc != 0 or s or missing:
            why = [f"exit {rc}"] + ([f"{s} skipped"] if s else []) + \
                  ([f"no result for {', '.join(missing)}"] if missing else [])
            problems.append(f"{os.path.basename(step['argv'][0])}: {'; '.join(why)}\n{log}")
    return passed, failed, skipped, problems


def main():
    if len(sys.argv) >= 5 and sys.argv[1] == "plan":
        for suite in sys.argv[4:]:
            plan(sys.argv[2], sys.argv[3], suite)
        return 0
    if len(sys.argv) >= 3 and sys.argv[1] == "report":
        out, bad = sys.argv[2], False
        for suite in sys.argv[3:]:
            passed, failed, skipped, problems = report(out, suite)
            seconds = open(os.path.join(out, f"{suite}.seconds")).read().strip() \
                if os.path.exists(os.path.join(out, f"{suite}.seconds")) else "?"
            print(f"suite {suite}: {passed} passed, {failed} failed, {skipped} skipped in {seconds} s")
            for p in problems:
                print(f"---- {suite}: {p}")
            # Every test must run on these stock kernels: a skip there hides a broken test.
            bad = bad or bool(problems) or failed or skipped or passed == 0
        return 1 if bad else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
