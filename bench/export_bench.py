"""Speed of the exports on the synthetic vault (issue 11's targets).

Measures, each as a fresh ``python -m cli.app`` process (wall, CPU of the process and its
workers, peak RSS summed over the process tree, sampled every 20 ms):

* ``export site OUT`` from scratch (target <= 60 s, <= 1 GB RSS);
* ``export site OUT`` again after one note changed (target <= 5 s);
* ``export summary NOTE`` of one note (target <= 1 s).

The vault is indexed first (not timed): the exports read the index.

Usage: python bench/export_bench.py [--notes 10000] [--vault DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))


def measure(cmd: list[str]) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    start = time.perf_counter()
    proc = psutil.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    peak, cpu = 0, {}
    while proc.poll() is None:
        try:
            procs = [proc] + proc.children(recursive=True)
            rss = 0
            for p in procs:
                try:
                    rss += p.memory_info().rss
                    t = p.cpu_times()
                    cpu[p.pid] = t.user + t.system
                except psutil.Error:
                    pass
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(0.02)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode("utf-8", "replace")
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {err}")
    return {"wall": wall, "cpu": sum(cpu.values()), "rss_mb": peak / 2**20, "stderr": err.strip().splitlines()[-1:]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--notes", type=int, default=10_000)
    ap.add_argument("--vault", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("/tmp/paperkb-export-bench"))
    args = ap.parse_args()
    from synth_vault import generate, title_of  # noqa: F401

    vault = args.vault or args.out / f"vault-{args.notes}"
    if not vault.is_dir():
        generate(vault, args.notes)
    py = [sys.executable, "-m", "cli.app", "--vault", str(vault)]
    print(f"load average before: {open('/proc/loadavg').read().split()[:3]}")
    subprocess.run(py + ["index", "-q"], check=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    site = args.out / "site"
    shutil.rmtree(site, ignore_errors=True)
    rows = []
    r = measure(py + ["export", "site", str(site)])
    rows.append(("export site, from scratch", r))
    r = measure(py + ["export", "site", str(site)])
    rows.append(("export site again, nothing changed", r))
    note = sorted(vault.rglob("*.md"))[len(list(vault.rglob("*.md"))) // 2]
    note.write_text(note.read_text(encoding="utf-8") + "\nOne more line.\n", encoding="utf-8")
    r = measure(py + ["export", "site", str(site)])
    rows.append(("export site after one note changed", r))
    lines = note.read_text(encoding="utf-8").splitlines()
    key = lines[lines.index("aliases:") + 1].strip()[2:]  # the citekey alias
    r = measure(py + ["export", "summary", key, "-o", str(args.out / "one.md")])
    rows.append((f"export summary of one note ({key})", r))
    r = measure(py + ["export", "summary", key, "-f", "html", "-o", str(args.out / "one.html")])
    rows.append(("export summary of one note, HTML", r))
    print(f"load average after: {open('/proc/loadavg').read().split()[:3]}")
    print("| measure | wall | CPU | peak RSS |\n|---|---|---|---|")
    for name, r in rows:
        print(f"| {name} | {r['wall']:.2f} s | {r['cpu']:.2f} s | {r['rss_mb']:.0f} MB |")
    for name, r in rows:
        print(f"{name}: {r['stderr']}")


if __name__ == "__main__":
    main()
