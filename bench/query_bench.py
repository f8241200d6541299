"""Query and search speed on the 10,000-note synthetic vault (warm index, and the first
query and search after an index build).

Targets (issue 3): a ``TABLE … FROM #tag WHERE … SORT …`` query <= 200 ms inside the
process and <= 0.5 s wall for the ``paperkb query`` command; ``search`` <= 100 ms inside
the process.

"Inside the process" times what a command does after Python has started: open the
vault, bring the index up to date (a stat of every file), sync the query/search helper
tables (nothing to do when warm) and run the query. Each figure is the median of
``--repeat`` runs.

"First after a build" marks the helper tables as made for another index (the state a
rebuild leaves them in), then times the sync in process and the whole command; target
(issue 3 follow-up) <= 3 s wall each. Use a copy of the bench vault: it rewrites those tables.

Usage: python bench/query_bench.py [--notes 10000] [--vault /tmp/paperkb-bench-10k] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from repro.environment import cpu_model  # noqa: E402

QUERIES = {
    "table-tag-where-sort": 'TABLE year, type, length(authors) AS n FROM #systems/gpu WHERE year >= 2015 '
                            'SORT year DESC, file.name LIMIT 50',
    "table-tag-inlinks": "TABLE year, length(file.inlinks) AS cited FROM #theory WHERE year = 2020 "
                         "SORT cited DESC LIMIT 20",
    "list-folder-group": 'TABLE length(rows) AS n FROM "topic03" GROUP BY year SORT key DESC',
}
SEARCHES = {
    "word": ("attention", {}),
    "phrase+tag": ('"language model"', {"tag": "nlp"}),
    "prefix+year": ("kern*", {"year": "2010-2015"}),
}



def timed(fn, repeat: int) -> tuple[float, object]:
    """Median wall-clock seconds of ``fn()`` (and its last result)."""
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def cpu_timed(fn, repeat: int) -> float:
    """Median CPU seconds of ``fn()`` in this process: on a shared, busy machine this is
    what the wall-clock time would be with the cores to itself."""
    times = []
    for _ in range(repeat):
        t = time.process_time()
        fn()
        times.append(time.process_time() - t)
    return statistics.median(times)


def child_cpu(cmd: list[str], env: dict, repeat: int) -> float:
    """Median user+system CPU seconds of a command (Python start-up included)."""
    times = []
    for _ in range(repeat):
        before = os.times()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        after = os.times()
        assert proc.returncode == 0, proc.stderr
        times.append((after.children_user - before.children_user) + (after.children_system - before.children_system))
    return statistics.median(times)


def forget_sync(root: Path) -> None:
    """Put the query/search tables in the state an index (re)build leaves them in: their
    rows made for another index (so every note must be redone)."""
    import sqlite3

    conn = sqlite3.connect(str(root / ".paperkb" / "index.db"), timeout=60, isolation_level=None)
    for table in ("query_state", "search_state"):
        try:
            conn.execute(f"UPDATE {table} SET value = 'rebuilt' WHERE key = 'index'")
        except sqlite3.OperationalError:
            pass
    conn.close()


def cold_first(root: Path, repeat: int) -> list[tuple]:
    """The first query and the first search after the index was (re)built: the sync in
    process (wall / CPU), and the whole command (wall / CPU, Python start-up included)."""
    from kb.query import IndexCorpus
    from kb.search import sync as search_sync
    from kb.vault import Vault

    out = []
    env = dict(os.environ, PAPERKB_VAULT=str(root))
    paperkb = str(Path(sys.executable).with_name("paperkb"))
    commands = {"query": [paperkb, "query", "-f", "json", QUERIES["table-tag-where-sort"]],
                "search": [paperkb, "search", "-f", "json", SEARCHES["word"][0]]}
    syncs = {"query": lambda v: IndexCorpus(v.connect(), v.root), "search": lambda v: search_sync(v.connect())}
    for kind in ("query", "search"):
        sync_wall, sync_cpu, cmd_wall, cmd_cpu = [], [], [], []
        for _ in range(repeat):
            forget_sync(root)
            v = Vault(root)
            v.index()
            t, c = time.perf_counter(), time.process_time()
            syncs[kind](v)
            sync_wall.append(time.perf_counter() - t)
            sync_cpu.append(time.process_time() - c)
            v.close()
            forget_sync(root)
            t, before = time.perf_counter(), os.times()
            proc = subprocess.run(commands[kind], env=env, capture_output=True, text=True)
            after = os.times()
            assert proc.returncode == 0, proc.stderr
            cmd_wall.append(time.perf_counter() - t)
            cmd_cpu.append((after.children_user - before.children_user)
                           + (after.children_system - before.children_system))
        row = (kind, " ".join(commands[kind][1:]), *(statistics.median(x) for x in (sync_wall, sync_cpu, cmd_wall,
                                                                                    cmd_cpu)))
        print(f"first {kind} after an index build: sync {row[2]:.2f} s (cpu {row[3]:.2f}), "
              f"command {row[4]:.2f} s (cpu {row[5]:.2f})")
        out.append(row)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--notes", type=int, default=10_000)
    ap.add_argument("--vault", type=Path, default=Path("/tmp/paperkb-bench-10k"))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--cold-repeat", type=int, default=3, help="runs of the first query/search after a build")
    ap.add_argument("--out", type=Path, default=None, help="write a Markdown report here")
    args = ap.parse_args()

    from bench.synth_vault import generate
    from kb.query import IndexCorpus, execute
    from kb.search import search_conn
    from kb.vault import Vault

    root = args.vault
    if not (root.exists() and sum(1 for _ in root.rglob("*.md")) == args.notes):
        t = time.perf_counter()
        generate(root, args.notes)
        print(f"generated {args.notes} notes in {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    stats = Vault(root).index()
    print(f"index update: {time.perf_counter() - t:.1f} s (parsed {stats.parsed})")
    cold = cold_first(root, args.cold_repeat)

    load_before = os.getloadavg()[0]
    rows = []
    for name, q in QUERIES.items():
        def full(q=q):
            vault = Vault(root)
            vault.index()
            res = execute(q, IndexCorpus(vault.connect(), vault.root))
            vault.close()
            return res

        vault = Vault(root)
        IndexCorpus(vault.connect(), vault.root)  # warm-up: open and sync once, outside the timings
        def run(q=q, vault=vault):
            return execute(q, IndexCorpus(vault.connect(), vault.root))

        exec_only, _ = timed(run, args.repeat)
        exec_cpu = cpu_timed(run, args.repeat)
        in_proc, res = timed(full, args.repeat)
        in_proc_cpu = cpu_timed(full, args.repeat)
        vault.close()
        env = dict(os.environ, PAPERKB_VAULT=str(root))
        paperkb = str(Path(sys.executable).with_name("paperkb"))
        cmd = [paperkb, "query", "-f", "json", q]
        wall, proc = timed(lambda: subprocess.run(cmd, env=env, capture_output=True, text=True), args.repeat)
        assert proc.returncode == 0, proc.stderr
        wall_cpu = child_cpu(cmd, env, args.repeat)
        rows.append(("query", name, q, len(res.rows), exec_only, exec_cpu, in_proc, in_proc_cpu, wall, wall_cpu))
        print(f"query {name}: {len(res.rows)} rows; execute {exec_only * 1e3:.0f} ms (cpu {exec_cpu * 1e3:.0f}), "
              f"in process {in_proc * 1e3:.0f} ms (cpu {in_proc_cpu * 1e3:.0f}), "
              f"command wall {wall * 1e3:.0f} ms (cpu {wall_cpu * 1e3:.0f})")
    for name, (text, kw) in SEARCHES.items():
        vault = Vault(root)
        conn = vault.connect()
        only, hits = timed(lambda: search_conn(conn, text, limit=20, **kw), args.repeat)
        only_cpu = cpu_timed(lambda: search_conn(conn, text, limit=20, **kw), args.repeat)

        def full(text=text, kw=kw):
            vault = Vault(root)
            vault.index()
            out = search_conn(vault.connect(), text, limit=20, **kw)
            vault.close()
            return out

        in_proc, _ = timed(full, args.repeat)
        in_proc_cpu = cpu_timed(full, args.repeat)
        vault.close()
        env = dict(os.environ, PAPERKB_VAULT=str(root))
        paperkb = str(Path(sys.executable).with_name("paperkb"))
        cmd = [paperkb, "search", "-f", "json", text] + [x for k, val in kw.items() for x in (f"--{k}", val)]
        wall, proc = timed(lambda: subprocess.run(cmd, env=env, capture_output=True, text=True), args.repeat)
        assert proc.returncode == 0, proc.stderr
        wall_cpu = child_cpu(cmd, env, args.repeat)
        rows.append(("search", name, text + "".join(f" --{k} {val}" for k, val in kw.items()), len(hits),
                     only, only_cpu, in_proc, in_proc_cpu, wall, wall_cpu))
        print(f"search {name}: {len(hits)} hits; search {only * 1e3:.0f} ms (cpu {only_cpu * 1e3:.0f}), in process {in_proc * 1e3:.0f} ms "
              f"(cpu {in_proc_cpu * 1e3:.0f}), command wall {wall * 1e3:.0f} ms (cpu {wall_cpu * 1e3:.0f})")

    if args.out:
        lines = [
            "# Query and search benchmark (issue 3)",
            "",
            f"- Machine: {os.cpu_count()}-core CPU, {cpu_model()}; Python {platform.python_version()}, "
            f"SQLite {__import__('sqlite3').sqlite_version}",
            f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average during the run "
            f"{load_before:.1f} -> {os.getloadavg()[0]:.1f} (the machine is shared)",
            f"- Vault: `bench/synth_vault.py`, {args.notes} notes, warm index; median of {args.repeat} runs.",
            "- *run*: what the query costs on the warm index: check/sync the helper tables with the "
            "index, then `execute()` (or `search_conn()`); *run + refresh*: also open the vault and "
            "`Vault.index()` (a stat of every file, the index module's freshness check that every "
            "command pays); *command*: the `paperkb` command, "
            "`--format json`, Python start-up included. Each is given as wall-clock time and as CPU "
            "time (user+system of the process): the machine is shared by several busy processes, so "
            "CPU time is the closer estimate of the wall-clock time on an idle machine.",
            "",
            "| kind | case | query | results | run wall / cpu (ms) | run + refresh wall / cpu (ms) "
            "| command wall / cpu (ms) |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for kind, name, q, n, a, a_cpu, b, b_cpu, c, c_cpu in rows:
            lines.append(f"| {kind} | {name} | `{q}` | {n} | {a * 1e3:.0f} / {a_cpu * 1e3:.0f} "
                         f"| {b * 1e3:.0f} / {b_cpu * 1e3:.0f} | {c * 1e3:.0f} / {c_cpu * 1e3:.0f} |")
        lines += [
            "",
            "Targets: query <= 200 ms in process and <= 500 ms wall; search <= 100 ms in process.",
            "",
            f"First query and first search after the index is built or rebuilt (the helper tables "
            f"redone for every note; median of {args.cold_repeat}): *sync* is that work in process, "
            "*command* the whole `paperkb` command (Python start-up, index check, sync, query).",
            "",
            "| kind | command | sync wall / cpu (s) | command wall / cpu (s) |",
            "| --- | --- | --- | --- |",
        ]
        for kind, cmd, a, a_cpu, b, b_cpu in cold:
            lines.append(f"| {kind} | `paperkb {cmd}` | {a:.2f} / {a_cpu:.2f} | {b:.2f} / {b_cpu:.2f} |")
        lines += [
            "",
            "Target: each <= 3 s wall.",
            "",
        ]
        args.out.write_text("\n".join(lines), encoding="utf-8")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
