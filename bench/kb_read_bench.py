"""Issue 14's read commands on a warm index, this tree against another, side by side.

The read part of bench/kb_bench.py (the same commands, note and tag, each a fresh
``python -m cli.app`` process with the bytecode cache on, one warm-up run, then the median
of ``--repeat``), run for two trees on their own warm copies of one synthetic vault,
interleaved command by command so that both see the same load. Prints a Markdown table
(wall / CPU seconds, CPU = user + sys of the process) with the load average before and
after, and whether each command printed byte-identical output in both trees.

Usage: python bench/kb_read_bench.py --vault /tmp/kb/vault-10000 \\
           [--before-code /tmp/base --before-vault /tmp/kb/vault-base] [--repeat 5]

(``--before-code``: e.g. ``git archive <commit> | tar -x -C /tmp/base``; each tree needs its
own copy of the vault, as the index's code fingerprint differs between trees.)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import kb_bench  # noqa: E402
import synth_vault  # noqa: E402


def timed(code: Path, args: list[str]) -> tuple[float, float, bytes]:
    """Wall and CPU seconds and stdout of one run of ``python -m cli.app ARGS`` from ``code``."""
    env = dict(os.environ, PYTHONPATH=str(code))
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # the bytecode cache, as users run it
    cpu0 = kb_bench._children_cpu()
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "cli.app", *args], capture_output=True, env=env, cwd=code)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed in {code}: {proc.stderr.decode()[-2000:]}")
    return wall, kb_bench._children_cpu() - cpu0, proc.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vault", type=Path, required=True, help="a warm, indexed synthetic vault")
    ap.add_argument("--before-code", type=Path, help="another paperkb tree to compare with")
    ap.add_argument("--before-vault", type=Path, help="its own copy of the vault")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    trees = {"after": (HERE.parent, args.vault)}
    if args.before_code:
        trees = {"before": (args.before_code, args.before_vault or args.vault), **trees}
    key = synth_vault.citekey(42)
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", file=sys.stderr)
    lines = [
        "| command | " + " | ".join(trees) + " | output same |",
        "|---|" + "---|" * len(trees) + "---|",
    ]
    for _label, cmd, _fallback in kb_bench.read_commands(key):
        walls: dict[str, list[float]] = {t: [] for t in trees}
        cpus: dict[str, list[float]] = {t: [] for t in trees}
        outs: dict[str, bytes] = {}
        for i in range(args.repeat + 1):
            for name, (code, vault) in trees.items():
                wall, cpu, out = timed(code, ["--vault", str(vault), *cmd])
                outs[name] = out
                if i:  # the first round warms the page cache and the bytecode cache
                    walls[name].append(wall)
                    cpus[name].append(cpu)
        cells = [f"{statistics.median(walls[t]):.3f} s / {statistics.median(cpus[t]):.3f} s" for t in trees]
        same = "-" if len(trees) == 1 else "yes" if len(set(outs.values())) == 1 else "**no**"
        lines.append(f"| `paperkb {' '.join(cmd)}` | " + " | ".join(cells) + f" | {same} |")
        print(lines[-1], file=sys.stderr, flush=True)
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", file=sys.stderr)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
