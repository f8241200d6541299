"""Speed of the exports on the synthetic vault (issue 11's and issue 14's targets).

Measures, each as a fresh ``python -m cli.app`` process (wall, CPU of the process and its
workers, peak RSS summed over the process tree, sampled every 20 ms):

* ``export json -o FILE`` (issue 14: target <= 2 s, <= 300 MB RSS), ``--repeat`` times;
* ``export site OUT`` from scratch (target <= 60 s, <= 1 GB RSS);
* ``export site OUT`` again after one note changed (target <= 5 s);
* ``export summary NOTE`` of one note (target <= 1 s).

The vault is indexed first (not timed): the exports read the index. ``--only json`` or
``--only site`` runs one part (the site part also changes a note of the vault).

Usage: python bench/export_bench.py [--notes 10000] [--vault DIR] [--out DIR] [--only json|site] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import resource
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
    load = float(open("/proc/loadavg").read().split()[0])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
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
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # exact for the process and the workers it waited for; the samples catch the rest
    waited = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    err = proc.stderr.read().decode("utf-8", "replace")
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {err}")
    return {
        "wall": wall,
        "cpu": max(waited, sum(cpu.values())),
        "rss_mb": peak / 2**20,
        "load": load,
        "stderr": err.strip().splitlines()[-1:],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--notes", type=int, default=10_000)
    ap.add_argument("--vault", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("/tmp/paperkb-export-bench"))
    ap.add_argument("--only", choices=("json", "site"), default=None, help="Run one part only.")
    ap.add_argument("--repeat", type=int, default=3, help="Runs of export json (the median is reported).")
    args = ap.parse_args()
    from synth_vault import generate, title_of  # noqa: F401

    vault = args.vault or args.out / f"vault-{args.notes}"
    if not vault.is_dir():
        generate(vault, args.notes)
    py = [sys.executable, "-m", "cli.app", "--vault", str(vault)]
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"load average before: {open('/proc/loadavg').read().split()[:3]}")
    subprocess.run(py + ["index", "-q"], check=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    rows = []
    if args.only in (None, "json"):
        rows += measure_json(py, args.out / "export.json", args.repeat)
    if args.only in (None, "site"):
        rows += measure_site(py, vault, args.out)
    print(f"load average after: {open('/proc/loadavg').read().split()[:3]}")
    print("| measure | wall | CPU | peak RSS | load (1 min) |\n|---|---|---|---|---|")
    for name, r in rows:
        print(f"| {name} | {r['wall']:.2f} s | {r['cpu']:.2f} s | {r['rss_mb']:.0f} MB | {r['load']:.1f} |")
    for name, r in rows:
        print(f"{name}: {r['stderr']}")


def measure_json(py: list[str], out: Path, repeat: int) -> list[tuple[str, dict]]:
    """``export json -o FILE`` ``repeat`` times: each run, then the median run (by wall)."""
    runs = [measure(py + ["export", "json", "-o", str(out)]) for _ in range(repeat)]
    rows = [(f"export json -o FILE, run {k + 1}", r) for k, r in enumerate(runs)]
    median = sorted(runs, key=lambda r: r["wall"])[len(runs) // 2]
    return rows + [(f"export json -o FILE, median of {len(runs)}", median)]


def measure_site(py: list[str], vault: Path, out: Path) -> list[tuple[str, dict]]:
    site = out / "site"
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
    r = measure(py + ["export", "summary", key, "-o", str(out / "one.md")])
    rows.append((f"export summary of one note ({key})", r))
    r = measure(py + ["export", "summary", key, "-f", "html", "-o", str(out / "one.html")])
    rows.append(("export summary of one note, HTML", r))
    return rows


if __name__ == "__main__":
    main()
