"""Time `paperkb run --all --preset smoke` on the bundled vault (issue 20: within 4 minutes on two
idle cores, independent experiments side by side).

Copies notes/ to a temporary folder (the bundled vault is never written to), runs the command
once, and prints the wall time, the CPU time of the children, the load average before and after
(the machine may be shared: say so when you record), each run's status and duration, and the
claims' words afterwards (the counts the README's claims section records).

    python bench/run_all_smoke.py                 # --jobs as run --all chooses (one per CPU)
    python bench/run_all_smoke.py --jobs 1        # one run at a time, for comparison
    python bench/run_all_smoke.py --json out.json # the figures as JSON as well
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from repro.environment import cpu_model  # noqa: E402  (machines of one size differ ~2.5x in speed here)


def paperkb(vault: Path, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    return subprocess.run(
        [sys.executable, "-m", "cli.app", "--vault", str(vault), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=None, help="passed to run --jobs (default: run's own choice)")
    ap.add_argument("--vault", type=Path, default=ROOT / "notes", help="the vault to copy (default: notes/)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="paperkb-run-all-") as tmp:
        vault = Path(tmp) / "vault"
        shutil.copytree(args.vault, vault, ignore=shutil.ignore_patterns(".paperkb"))
        paperkb(vault, "index")  # the index is not what is timed
        cmd = ["run", "--all", "--preset", "smoke"] + (["--jobs", str(args.jobs)] if args.jobs is not None else [])
        load_before = os.getloadavg()
        cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        proc = paperkb(vault, *cmd)
        wall = time.monotonic() - t0
        cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        load_after = os.getloadavg()
        runs = json.loads(paperkb(vault, "runs", "--format", "json").stdout or "[]")
        claims = json.loads(paperkb(vault, "claims", "--format", "json").stdout or "[]")

    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    words = Counter(c["status"] for c in claims)
    figures = {
        "command": "paperkb run --all --preset smoke" + (f" --jobs {args.jobs}" if args.jobs is not None else ""),
        "exit_status": proc.returncode,
        "wall_s": round(wall, 1),
        "cpu_s_children": round(cpu, 1),
        "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": cpu_model(),
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in load_after],
        "runs": [
            {"experiment": r["experiment"], "seed": r["seed"], "status": r["status"], "took_s": r["duration_s"]}
            for r in sorted(runs, key=lambda r: r["started"] or "")
        ],
        "claims": len(claims),
        "words": dict(sorted(words.items())),
    }
    print(f"{figures['command']}: exit {proc.returncode}, {wall:.1f} s wall, {cpu:.1f} s CPU (children)")
    busy = sum(r["took_s"] or 0 for r in figures["runs"])
    figures["runs_total_s"] = round(busy, 1)
    print(
        f"CPUs {figures['cpus']} ({figures['cpu_model']}), {figures['date_utc']} UTC; load average before "
        f"{figures['load_before']}, after {figures['load_after']}"
    )
    print(
        f"runs' own durations sum to {busy:.1f} s ({busy / figures['cpus']:.1f} s per CPU): "
        f"{wall - busy / figures['cpus']:.1f} s of the wall time is start-up, planning, waiting and the summary"
    )
    print("| experiment | seed | status | took (s) |\n|---|---|---|---|")
    for r in figures["runs"]:
        print(f"| {r['experiment']} | {r['seed']} | {r['status']} | {r['took_s']} |")
    print(f"{len(claims)} claims: " + ", ".join(f"{n} {w}" for w, n in sorted(words.items())))
    if proc.returncode not in (0, 1):
        print(proc.stderr[-2000:], file=sys.stderr)
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
