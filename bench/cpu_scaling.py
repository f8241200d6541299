"""What a second core buys a cold index on this machine: the parse of the same notes by
one process, then by two at once.

Usage: python bench/cpu_scaling.py VAULT [--notes N] [--rounds R]

The cold index splits its parse over one worker per CPU. On a machine whose CPUs share
a physical core (hyperthreads) or its caches, two busy processes each run slower than
one alone, so two workers give less than twice the throughput. This times
``kb.index._parse_batch`` on N notes of VAULT in one process, then in two processes at
the same time (each its own N notes), best of R rounds, and prints the per-note CPU time
of each and the throughput gained by the second process.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _paths(root: str) -> list[str]:
    return sorted(
        os.path.relpath(os.path.join(d, f), root)
        for d, _dirs, files in os.walk(root)
        if not os.path.relpath(d, root).startswith(".")
        for f in files
        if f.endswith(".md")
    )


def _parse(root: str, paths: list[str], start, out) -> None:
    from kb import index

    items = [(p, 0.0, 0.0, None) for p in paths]
    index._parse_batch(root, items[:20], "warm")
    start.wait()
    wall, cpu = time.perf_counter(), time.process_time()
    index._parse_batch(root, items, "timed")
    out.put((time.perf_counter() - wall, time.process_time() - cpu))


def run(root: str, chunks: list[list[str]]) -> list[tuple[float, float]]:
    ctx = multiprocessing.get_context("fork")
    start, out = ctx.Barrier(len(chunks)), ctx.Queue()
    procs = [ctx.Process(target=_parse, args=(root, chunk, start, out)) for chunk in chunks]
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("vault")
    ap.add_argument("--notes", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    paths = _paths(args.vault)
    if len(paths) < 2 * args.notes:
        raise SystemExit(f"error: {args.vault} has {len(paths)} notes; --notes {args.notes} needs twice that")
    a, b = paths[: args.notes], paths[args.notes : 2 * args.notes]
    one = min(run(args.vault, [a])[0][0] for _ in range(args.rounds))
    two = min(max(w for w, _ in run(args.vault, [a, b])) for _ in range(args.rounds))
    n = args.notes
    print(f"load average {os.getloadavg()[0]:.1f}; {os.cpu_count()} CPUs")
    print(f"one process:   {one / n * 1e3:.3f} ms a note")
    print(f"two at once:   {two / n * 1e3:.3f} ms a note each ({2 * n} notes in {two:.2f} s)")
    print(f"throughput of two processes over one: {2 * one / two:.2f}x (2.00x on two independent cores)")


if __name__ == "__main__":
    main()
