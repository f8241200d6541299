"""How fast could a cold index be with a native body scanner? A measured lower bound.

Usage: python bench/index_floor.py VAULT [--rounds 2]

Issue 14 asks for a cold index of 10,000 notes in 5 s on 2 cores. The parse workers spend
most of their time in ``kb.scan.scan_body`` (the Python scanner of a note's body), so
the obvious next step would be to write that scanner in C or Rust. Before anyone does,
this measures what it could buy at best: each round runs, in fresh processes and
interleaved, a real cold index of VAULT and one where ``scan_body`` costs (almost)
nothing. In the second, every note's scan is recorded first, in the parent process
before the parse workers fork, and the workers only look their result up (copying the
lists, as a native scanner would have to build them). Everything else, reading, hashing,
the frontmatter, the paper model, serialising, link resolution and SQLite, is the real
code. Prints a Markdown table: the whole index (``Vault.index``), its parallel parse
phase and its serial tail (``_apply``: resolution and the database), and checks that both
variants wrote the same rows (else the comparison would be void).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from kb.index import scan  # noqa: E402

_CHILD = r"""
import copy, shutil, sys, time
from pathlib import Path
root, mode = Path(sys.argv[1]), sys.argv[2]
from kb import index as I, parse as P, scan as S
from kb.vault import Vault

if mode == "free-scan":
    recorded = {}
    real_scan = S.scan_body
    fields = ("headings", "links", "callouts", "tasks", "lists", "inline_fields", "block_ids", "highlights", "tags",
              "body_text")

    def record(note, source):
        result = real_scan(note, source)
        if result is not None:
            recorded[source] = (result, {k: getattr(note, k) for k in fields})
        return result

    S.scan_body = record
    for path in I.scan(root)[0]:  # the notes the index will parse
        P.parse_note((root / path).read_bytes(), path, fast=True)

    def looked_up(note, source):
        hit = recorded.get(source)
        if hit is None:
            return real_scan(note, source)
        result, values = hit
        for k, v in values.items():
            if k == "links":
                v = [copy.copy(link) for link in v]  # resolution writes into each Link
            elif isinstance(v, list):
                v = list(v)
            setattr(note, k, v)
        return result

    S.scan_body = looked_up

phase = {}
for name in ("_read_and_parse", "_apply"):
    def timed(*a, _f=getattr(I, name), _n=name, **k):
        start = time.perf_counter()
        try:
            return _f(*a, **k)
        finally:
            phase[_n] = time.perf_counter() - start
    setattr(I, name, timed)

shutil.rmtree(root / ".paperkb", ignore_errors=True)
start = time.perf_counter()
Vault(root).index()
total = time.perf_counter() - start
import hashlib, sqlite3
digest = hashlib.blake2b(digest_size=8)
with sqlite3.connect(root / ".paperkb" / "index.db") as db:  # what was built, to compare the variants
    for table in ("notes", "links", "names", "tags", "problems"):
        for row in sorted(repr(r) for r in db.execute(f"SELECT * FROM {table}")):
            digest.update(row.encode())
print(f"RESULT {total:.3f} {phase['_read_and_parse']:.3f} {phase['_apply']:.3f} {digest.hexdigest()}")
"""


def run(vault: str, mode: str) -> tuple[float, float, float, str]:
    """Seconds of the index, its parse phase and its tail, and a digest of the rows it wrote."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, vault, mode], env=env, capture_output=True, text=True, check=True
    ).stdout
    m = re.search(r"RESULT (\S+) (\S+) (\S+) (\S+)", out)
    if m is None:
        raise SystemExit(f"no result from the {mode} run:\n{out[-2000:]}")
    return float(m.group(1)), float(m.group(2)), float(m.group(3)), m.group(4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("vault")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    modes = {"real": "the real index", "free-scan": "body scan looked up (a native scanner's best case)"}
    seen: dict[str, list[tuple[float, float, float, str]]] = {m: [] for m in modes}
    for _ in range(args.rounds):
        for mode in modes:
            seen[mode].append(run(args.vault, mode))
            print(mode, *seen[mode][-1], file=sys.stderr)
    n = len(scan(Path(args.vault))[0])
    print(f"{n} notes, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, {args.rounds} rounds interleaved")
    print()
    print("| variant | index (s) | parse phase (s) | serial tail (s) |")
    print("|---|---|---|---|")
    for mode, label in modes.items():
        cols = [" / ".join(f"{r[i]:.2f}" for r in seen[mode]) for i in range(3)]
        print(f"| {label} | {' | '.join(cols)} |")
    digests = {r[3] for rows in seen.values() for r in rows}
    if len(digests) != 1:  # the looked-up scans must give the very index the real ones do
        raise SystemExit(f"the variants built different indexes ({sorted(digests)}): the comparison is void")
    print("\nboth variants wrote the same rows (notes, links, names, tags, problems)")
    best = min(r[0] for r in seen["free-scan"])
    print(
        f"\nbest case with a native scanner: {best:.2f} s; median {statistics.median(r[0] for r in seen['free-scan']):.2f} s"
    )


if __name__ == "__main__":
    main()
