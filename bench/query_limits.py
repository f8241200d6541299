"""Hostile queries against the query engine's limits (issue 12, items 5, 6 and 9).

Each attack runs in a fresh Python process over a 1,000-note in-memory vault with the
default limits; the report gives the one-line error it ends in, wall and CPU time, and the
process's peak memory (max RSS). Before the limits these took 6 GB / 52 s (22 FLATTENs),
1.9 GB (padleft), for ever (regex), or ended in RecursionError / ValueError.

Usage: python bench/query_limits.py [--out bench/results/query_limits.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

ATTACKS = {
    "22 x FLATTEN list(1, 2)": "LIST " + " ".join(f"FLATTEN list(1, 2) AS x{i}" for i in range(22)),
    "doubling reduce (string)": 'LIST reduce(list("ab", ' + ", ".join(map(str, range(40))) + '), (a, x) => a + a) LIMIT 1',
    "doubling reduce (list)": "LIST reduce(list(list(1, 2), " + ", ".join(map(str, range(40))) + "), (a, x) => a + a) LIMIT 1",
    "doubling reduce (number)": "LIST reduce(list(1, " + ", ".join(map(str, range(2000))) + "), (a, x) => a + a) LIMIT 1",
    'padleft("", 2e9)': 'LIST padleft("", 2e9) LIMIT 1',
    'regexmatch("(a+)+$", 5,000 a + "!")': f'LIST WHERE regexmatch("(a+)+$", "{"a" * 5000}!")',
    'regexmatch("(a|a)+$", 40 a + "!")': f'LIST WHERE regexmatch("(a|a)+$", "{"a" * 40}!")',
    "1,600-term OR": "LIST WHERE " + " OR ".join(f"n = {i}" for i in range(1600)),
    "5,000 nested parentheses": "LIST WHERE " + "(" * 5000 + "1" + ")" * 5000,
    "self-application": "LIST ((f) => f(f))((f) => f(f)) LIMIT 1",
    "date overflow": "LIST date(9999-12-31) + dur(1 day) LIMIT 1",
    "nested maps (time)": "LIST map(list(" + ",".join(["1"] * 300) + "), (a) => map(list(" + ",".join(["1"] * 300)
                          + "), (b) => map(list(" + ",".join(["1"] * 300) + "), (c) => a + b + c))) LIMIT 1",
}

CHILD = r"""
import json, resource, sys, time
from kb.parse import parse_note
from kb.query import MemoryCorpus, QueryError, execute
corpus = MemoryCorpus([parse_note(f"---\ntags: [t]\nn: {i}\n---\n# N{i}\n", f"n{i}.md") for i in range(1000)])
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
w, c = time.perf_counter(), time.process_time()
try:
    res = execute(sys.argv[1], corpus)
    outcome = f"{len(res.rows)} rows"
except QueryError as exc:
    outcome = "error: " + str(exc)
except BaseException as exc:
    outcome = f"UNCAUGHT {type(exc).__name__}: {exc}"[:200]
print(json.dumps({"outcome": outcome, "wall": time.perf_counter() - w, "cpu": time.process_time() - c,
                  "base_mb": base / 1024, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    lines = [
        "# Query limits under attack",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.node()}, {os.cpu_count()} CPUs, "
        f"load average at start {os.getloadavg()[0]:.2f}; default limits; 1,000-note vault in memory.",
        "",
        "| attack | outcome | wall (s) | CPU (s) | peak RSS (MB, vault alone) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, query in ATTACKS.items():
        proc = subprocess.run([sys.executable, "-c", CHILD, query], env=env, capture_output=True, text=True,
                              timeout=300)
        try:
            r = json.loads(proc.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            r = {"outcome": "CRASHED: " + proc.stderr.strip()[-200:], "wall": 0, "cpu": 0, "base_mb": 0, "peak_mb": 0}
        outcome = r["outcome"].replace("|", "\\|")
        if len(outcome) > 110:
            outcome = outcome[:107] + "..."
        shown = name.replace("|", "\\|")
        lines.append(f"| {shown} | {outcome} | {r['wall']:.2f} | {r['cpu']:.2f} | {r['peak_mb']:.0f} ({r['base_mb']:.0f}) |")
        print(lines[-1], flush=True)
    lines.append("")
    lines.append(f"Load average at end {os.getloadavg()[0]:.2f}.")
    if args.out:
        args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
