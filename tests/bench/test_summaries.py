#!/usr/bin/env python3
"""The benchmark summaries decide whether a goal is met: report.py writes
RESULTS.md's verdicts from scripts/bench.sh's results, device_summary.py those
of a device run (issue 16). Both are checked here on results made up for the
purpose, shaped as netbench.py and workers_bench.py write them.

Run: /usr/bin/python3 tests/bench/test_summaries.py   (CTest: bench_summaries)
"""
import contextlib
import io
import json
import os
import sys
import tempfile
import unittest
from unittest import mock

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import device_summary  # noqa: E402
import report  # noqa: E402


def step(rate, sent, delivered, achieved=None, cpu_s=0.1, counters=None):
    """One fidelity step as netbench.py records it."""
    return {"rate": rate, "client": {"achieved_rps": rate if achieved is None else achieved}, "sent": sent,
            "delivered": delivered, "bad": 0, "dup": 0, "share": delivered / sent if sent else 0.0,
            "cpu_s": cpu_s, "wall_s": 1.0, "cpu_pct": 100.0 * cpu_s, "shadowtap": counters or {}}


def fidelity(steps_by_rate):
    return {"runs": 1, "seconds": 1, "rates": sorted(steps_by_rate), "nproc": 16, "nginx_processes": 4,
            "client_threads": 4, "steps": {str(r): s for r, s in steps_by_rate.items()}}


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f)


def ceiling_steps(full_up_to, rates, short_at=None):
    """A worker count's steps: every rate up to `full_up_to` delivered in full,
    the others at 90 %; at `short_at` the client itself fell short (sent 80 %)."""
    out = {}
    for r in rates:
        if r == short_at:
            out[r] = [step(r, r, r, achieved=0.8 * r)]
        else:
            out[r] = [step(r, r, r if r <= full_up_to else int(0.9 * r))]
    return out


class Workdir(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.dir = self._tmp.name

    def tearDown(self):
        self._tmp.cleanup()


class DeviceCeiling(Workdir):
    RATES = [80000, 110000, 165000, 220000]

    def verdict(self, one, wide, workers=4):
        write(os.path.join(self.dir, "ceil-w1", "fidelity.json"), fidelity(one))
        write(os.path.join(self.dir, f"ceil-w{workers}", "fidelity.json"), fidelity(wide))
        out, verdicts = [], []
        device_summary.ceiling_section(self.dir, out, verdicts)
        self.assertEqual(len(verdicts), 1, verdicts)
        return verdicts[0], "\n".join(out)

    def test_ceiling_is_the_last_full_rate_before_the_first_short_one(self):
        ss = [step(80000, 80000, 80000), step(110000, 110000, 110000), step(165000, 165000, 150000),
              step(220000, 220000, 220000)]
        self.assertEqual(device_summary.ceiling(ss), (110000, True))
        self.assertEqual(device_summary.ceiling(ss[:2]), (110000, False))
        self.assertEqual(device_summary.ceiling([step(80000, 80000, 70000)]), (None, True))

    def test_a_step_the_client_could_not_send_is_not_full(self):
        self.assertFalse(device_summary.full(step(80000, 64000, 64000, achieved=64000)))
        self.assertTrue(device_summary.full(step(80000, 78000, 78000, achieved=78000)))
        self.assertFalse(device_summary.full(step(80000, 80000, 79000)))  # 98.75 % delivered

    def test_met_at_twice_the_one_worker_ceiling(self):
        v, table = self.verdict(ceiling_steps(80000, self.RATES), ceiling_steps(165000, self.RATES))
        self.assertIn("1 worker 80,000 req/s, 4 workers 165,000 req/s: met", v)
        self.assertIn("| 4 | 165,000 |", table)
        # The pool's connects and the mirror's latency, when netbench recorded them (n/a before it did).
        self.assertIn("| 0 | 0 | n/a / n/a |", table)

    def test_the_pools_connects_saturations_and_latency_are_shown(self):
        one = ceiling_steps(80000, self.RATES)
        one[110000][0]["shadowtap"] = {"queue_full": 11000, "mirror.connect_attempts": 871,
                                       "mirror.growth_saturated": 3,
                                       "mirror.latency_p50_ms": 25.0, "mirror.latency_p99_ms": 50.0}
        _, table = self.verdict(one, ceiling_steps(165000, self.RATES))
        self.assertIn("| 1 | 110,000 | 110,000 | 110,000 | 99,000 | 90.00 % | 10 % | 11,000 | 0 | 0 | 871 | 3 | "
                      "≤ 25 ms / ≤ 50 ms |", table)

    def test_missed_below_twice(self):
        v, _ = self.verdict(ceiling_steps(80000, self.RATES), ceiling_steps(110000, self.RATES))
        self.assertTrue(v.endswith("missed (a step the client could not send at its rate does not count)."), v)

    def test_client_shortfall_ends_the_wide_ceiling(self):
        v, _ = self.verdict(ceiling_steps(80000, self.RATES),
                            ceiling_steps(220000, self.RATES, short_at=165000))
        self.assertIn("4 workers 110,000 req/s: missed", v)

    def test_not_shown_when_one_worker_never_fell(self):
        v, _ = self.verdict(ceiling_steps(220000, self.RATES), ceiling_steps(220000, self.RATES))
        self.assertIn("not shown: one worker delivered every step in full", v)

    def test_not_shown_when_one_worker_has_no_full_step(self):
        v, _ = self.verdict(ceiling_steps(0, self.RATES), ceiling_steps(220000, self.RATES))
        self.assertIn("not shown: with one worker no step from the lowest (80,000 req/s)", v)


class DeviceClosedLoop(Workdir):
    def verdict(self, none_rps, tap_rps, responses):
        res = {"none/ok": {"wrk": [{"rps": r, "requests": int(r * 5)} for r in none_rps]},
               "shadowtap/ok": {"wrk": [{"rps": r, "requests": int(r * 5)} for r in tap_rps],
                                "rate": [{"sent": 10000} for _ in tap_rps],
                                "shadowtap": [{"mirror.responses": m, "cpu_pct_wrk": 50.0} for m in responses]}}
        write(os.path.join(self.dir, "impact", "impact.json"),
              {"conns": 256, "client_threads": 4, "seconds": 5, "nginx_processes": 4, "results": res})
        out, verdicts = [], []
        device_summary.impact_section(self.dir, out, verdicts)
        return verdicts[0], "\n".join(out)

    def test_met_with_everything_mirrored(self):
        # Produced = wrk's requests + the constant-rate client's 10,000.
        v, table = self.verdict([100000] * 3, [96000] * 3, [96000 * 5 + 10000] * 3)
        self.assertIn("Closed loop: 0.96× of no mirroring with 100.00 % mirrored", v)
        self.assertTrue(v.endswith(": met."), v)
        self.assertIn("| 1 | 100,000 | 96,000 | 0.96× | 100.00 % | 50 % |", table)

    def test_missed_when_throughput_falls(self):
        v, _ = self.verdict([100000, 100000, 100000], [90000, 99000, 80000], [10**9] * 3)
        self.assertIn("0.90×", v)
        self.assertTrue(v.endswith(": missed."), v)

    def test_missed_when_too_little_is_mirrored(self):
        produced = 100000 * 5 + 10000
        v, _ = self.verdict([100000] * 3, [100000] * 3, [int(0.998 * produced)] * 3)
        self.assertIn("1.00× of no mirroring with 99.80 % mirrored", v)
        self.assertTrue(v.endswith(": missed."), v)


class DeviceCpuAndReplay(Workdir):
    def test_cpu_per_million_median_and_pairs(self):
        for i, (plain, rx) in enumerate([(0.2, 0.1), (0.4, 0.3), (0.3, 0.06)]):
            write(os.path.join(self.dir, f"cpu-plain-{i}", "fidelity.json"),
                  fidelity({20000: [step(20000, 100000, 100000, cpu_s=plain)]}))
            write(os.path.join(self.dir, f"cpu-rx-{i}", "fidelity.json"),
                  fidelity({20000: [step(20000, 100000, 100000, cpu_s=rx)]}))
        out, verdicts = [], []
        device_summary.cpu_section(self.dir, out, verdicts)
        text = "\n".join(out)
        self.assertIn("| veth as it is | 2.0, 4.0, 3.0 | **3.0** |", text)
        self.assertIn("| mirror's receive in its own thread | 1.0, 3.0, 0.6 | **1.0** |", text)
        self.assertIn("| paired ratio | 0.50, 0.75, 0.20 | 0.50× |", text)
        self.assertEqual(verdicts, ["- CPU per mirrored request at 20,000 req/s: 3.0 CPU-s per million, 1.0 with the "
                                    "mirror's receive in its own thread (goal ≤ 3): met."])

    def test_replay_scaling(self):
        def runs(rps):
            return [{"answered_per_s": r, "cpu_us_per_request": 5.0} for r in rps]
        for n, wide in ((2, [150000, 170000, 160000]), (4, [300000, 320000, 310000])):
            write(os.path.join(self.dir, f"workers-{n}.json"),
                  {"workers": n, "connections": 64, "nginx_processes": n, "nproc": 16, "runs": 3, "seconds": 3,
                   "results": {"1": runs([90000, 100000, 95000]), str(n): runs(wide)}})
        out, verdicts = [], []
        device_summary.workers_section(self.dir, out, verdicts)
        self.assertIn("2 workers 160,000 req/s (80,000 per worker", out[0])
        self.assertIn("**1.68×**", out[0])
        self.assertIn("**3.26×**", out[1])
        # Only the 2-worker run is the goal.
        self.assertEqual(verdicts, ["- replay scaling, 2 workers vs 1: 1.68× (goal ≥ 1.8): missed."])

    def test_nothing_measured_says_so(self):
        buf = io.StringIO()
        with mock.patch.object(sys, "argv", ["device_summary.py", self.dir]), contextlib.redirect_stdout(buf):
            self.assertEqual(device_summary.main(), 0)
        self.assertIn("- no results", buf.getvalue())
        self.assertIn("CPU per request: no results.", buf.getvalue())


class ReportSections(Workdir):
    def test_fidelity_ceiling_loss_and_cpu_goal(self):
        fd = fidelity({10000: [step(10000, 1000, 1000), step(10000, 1000, 1000)],
                       20000: [step(20000, 2000, 2000, cpu_s=0.02), step(20000, 2000, 2000, cpu_s=0.04)],
                       40000: [step(40000, 4000, 3990, counters={"queue_full": 10}), step(40000, 4000, 4000)]})
        out, summary, misses = [], [], []
        report.fidelity_section(fd, out, summary, misses)
        text = "\n".join(out)
        self.assertIn("Highest rate with 100.0 % delivered in every run: **20,000 req/s**; loss begins at: "
                      "**40,000 req/s**", text)
        self.assertIn("40,000 req/s: lost 10 of 4,000", text)
        self.assertIn("queue_full 10", text)
        self.assertIn("**15.0 CPU-s per million requests**", text)  # median of 10 and 20
        self.assertEqual(len(misses), 1)
        self.assertIn("is 15.0 µs (goal ≤ 3", misses[0])

    def test_fidelity_cpu_goal_met_is_no_miss(self):
        fd = fidelity({20000: [step(20000, 100000, 100000, cpu_s=0.25)]})
        out, summary, misses = [], [], []
        report.fidelity_section(fd, out, summary, misses)
        self.assertEqual(misses, [])
        self.assertIn("2.5 CPU-s per million", summary[0])
        self.assertIn("no loss at any rate tried, up to 20,000 req/s", summary[1])

    def test_workers_scaling_and_the_shared_cpus(self):
        def runs(rps):
            return [{"answered_per_s": r, "cpu_us_per_request": 10.0, "cpu_cores_used": 0.9, "mirror_errors": 0,
                     "submit_dropped": 0} for r in rps]
        w = {"workers": 2, "io": "uring", "connections": 64, "nginx_processes": 1, "runs": 3, "seconds": 4,
             "nproc": 2, "results": {"1": runs([60000, 62000, 64000]), "2": runs([50000, 56000, 58000])}}
        out, summary, misses = [], [], []
        report.workers_section(w, out, summary, misses)
        self.assertIn("Scaling 2 vs 1 worker: **0.90×**", "\n".join(out))
        self.assertEqual(misses, ["workers scale 0.90× from 1 to 2 (goal ≥ 1.8×; 2 CPUs shared with the mirror)"])
        w["nproc"], w["results"]["2"] = 16, runs([115000, 120000, 125000])
        out, summary, misses = [], [], []
        report.workers_section(w, out, summary, misses)
        self.assertIn("**1.94×**", "\n".join(out))
        self.assertEqual(misses, [])

    def test_empty_results_write_every_part_as_not_run(self):
        dest = os.path.join(self.dir, "RESULTS.md")
        with mock.patch.object(sys, "argv", ["report.py", self.dir, dest]):
            report.main()
        with open(dest) as f:
            text = f.read()
        self.assertTrue(text.startswith("# shadowtap benchmark results\n"))
        self.assertEqual(text.count("Not run in this invocation"), 7)  # kernel, pipeline, impact .. io
        self.assertIn("Every goal measured here is met.", text)


if __name__ == "__main__":
    unittest.main(verbosity=2)
