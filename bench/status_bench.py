"""How fast `paperkb status` and `paperkb claims` answer on a warm 10,000-note index.

Target (issue 9): <= 0.3 s wall for each, with the filters (--note, --tag, --status), the
claims read from the SQLite index and the statuses from the run tracker. Each step is a
fresh `python -m cli.app` process (interpreter start counted), timed as wall and CPU
(user + sys of the child), best of REPEATS after one warm-up; the machine's load average is
recorded beside them.

Usage: python bench/status_bench.py [--notes 10000] [--out bench/results/verdicts.md]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
REPEATS = 5


def timed(args: list[str], env: dict) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "cli.app", *args],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def seed_runs(vault: Path, claim_ids: list[str]) -> None:
    """A tracker with runs for some experiments (passed, failed, a control, an override)."""
    from repro.tracker import FAILED, PASSED, Tracker

    check = {
        "name": "c",
        "value": 1.0,
        "op": "<=",
        "threshold": 2.0,
        "passed": True,
        "evidence": "direct",
        "scale": "smoke",
        "description": "",
    }
    with Tracker(vault) as t:
        if t.runs(limit=1):
            return
        for i, exp in enumerate(["transformer/param-count", "llama/param-count", "flash-attention/exact"] * 10):
            for kw, status in (({}, PASSED), ({"control": "sabotage"}, FAILED), ({"overrides": {"n": i}}, FAILED)):
                run = t.create_run(exp, preset="smoke", params={}, scale="smoke", claims=claim_ids[:3], **kw)
                t.mark_running(run.id, None)
                t.finish(
                    run.id,
                    status,
                    verdict="supported" if status == PASSED else "contradicted",
                    checks=[dict(check, passed=status == PASSED)],
                )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--notes", type=int, default=10_000)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/paperkb-bench"))
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    from bench.synth_vault import generate

    vault = args.dir / f"vault-{args.notes}"
    if not (vault / ".paperkb" / "index.db").exists():
        generate(vault, args.notes)
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="200")
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    timed(["--vault", str(vault), "index"], env)  # cold or catching up
    index_s = time.perf_counter() - t0
    from kb.claims import indexed_claims

    claims = indexed_claims(vault)
    seed_runs(vault, [c["id"] for c in claims])
    tag = "nlp"
    cases = [
        ("paperkb status", ["status"]),
        ("paperkb status --format json", ["status", "--format", "json"]),
        ("paperkb claims --format json", ["claims", "--format", "json"]),
        (f"paperkb claims --tag {tag} --status unverified", ["claims", "--tag", tag, "--status", "unverified"]),
        ("paperkb status --note NOTE", ["status", "--note", claims[0]["title"]]),
        ("(start-up floor: python -c 'import cli.app')", None),
    ]
    rows = []
    for label, cmd in cases:
        best_wall, best_cpu = float("inf"), float("inf")
        for i in range(REPEATS + 1):
            if cmd is None:
                t = time.perf_counter()
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                subprocess.run([sys.executable, "-c", "import cli.app"], cwd=ROOT, env=env, check=True)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                wall = time.perf_counter() - t
                cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            else:
                wall, cpu = timed(["--vault", str(vault), *cmd], env)
            if i:  # the first is a warm-up
                best_wall, best_cpu = min(best_wall, wall), min(best_cpu, cpu)
        rows.append((label, best_wall, best_cpu))
        print(f"{label}: {best_wall:.3f} s wall, {best_cpu:.3f} s CPU", flush=True)
    load1 = os.getloadavg()[0]
    lines = [
        "# Claim status benchmark (bench/status_bench.py)",
        "",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- Machine: {os.cpu_count()}-core CPU; Python {sys.version.split()[0]}; load average {load0:.1f} at the "
        f"start, {load1:.1f} at the end (1-minute; shared machine)",
        f"- Vault: {args.notes} synthetic notes (bench/synth_vault.py), {len(claims)} claims; index brought up to "
        f"date first ({index_s:.1f} s); tracker with 90 runs (real, control, override)",
        f"- Each step a fresh `python -m cli.app` process; best of {REPEATS} after a warm-up; CPU = user + sys",
        "",
        "| command | wall | CPU | target (wall) | met |",
        "|---|---|---|---|---|",
    ]
    for label, wall, cpu in rows:
        target = "" if label.startswith("(") else "<= 0.3 s"
        met = "" if not target else ("yes" if wall <= 0.3 else "**no**")
        lines.append(f"| {label} | {wall:.3f} s | {cpu:.3f} s | {target} | {met} |")
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
