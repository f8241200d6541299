"""Instructions a cold index spends per note in its parse workers, counted by valgrind.

Usage: python bench/parse_instructions.py VAULT [--notes N] [--code TREE ...]

Wall and CPU seconds on a shared 2-core machine move by 20-30 % from one run to the next
(other jobs, frequency, the neighbour on the same core); the number of instructions a
piece of code executes does not. This counts them with valgrind's callgrind for what one
parse worker does to N notes of VAULT (read, hash, parse with the scanner, serialise:
``kb.index._parse_batch``), minus the same process doing nothing, divided by N. With
several ``--code`` trees (e.g. ``git worktree add /tmp/old <commit>``) it compares them on
the same notes. Needs valgrind (`apt-get install valgrind`); about a minute per tree for
N = 200.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

_CHILD = r"""
import os, sys
from kb import index as I
root, n = sys.argv[1], int(sys.argv[2])
paths = sorted(
    os.path.relpath(os.path.join(d, f), root)
    for d, dirs, files in os.walk(root)
    if not os.path.relpath(d, root).startswith(".")
    for f in files
    if f.endswith(".md")
)
I._parse_batch(root, [(p, 0.0, 0.0, None) for p in paths[-50:]], "warm")  # imports, caches
I._parse_batch(root, [(p, 0.0, 0.0, None) for p in paths[:n]], "count")
"""


def instructions(code: str, vault: str, n: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "child.py")
        with open(script, "w", encoding="utf-8") as f:
            f.write(_CHILD)
        env = dict(os.environ, PYTHONPATH=code)
        out = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, script, vault, str(n)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    m = re.search(r"Collected : (\d+)", out.stderr)
    if m is None:
        raise SystemExit(f"valgrind printed no count:\n{out.stderr[-2000:]}")
    return int(m.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("vault", help="a folder of notes (e.g. one made by bench/synth_vault.py)")
    ap.add_argument("--notes", type=int, default=200)
    ap.add_argument("--code", action="append", help="a source tree to measure (default: this one)")
    args = ap.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("error: valgrind is not installed (apt-get install valgrind)")
    trees = args.code or [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
    for tree in trees:
        base = instructions(tree, args.vault, 0)
        full = instructions(tree, args.vault, args.notes)
        print(f"{tree}: {(full - base) / args.notes / 1e6:.2f} M instructions a note ({args.notes} notes)")


if __name__ == "__main__":
    main()
