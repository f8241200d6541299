"""Race cold ``paperkb index`` processes against each other and check the index survives.

Each round deletes ``V/.paperkb/index.db*`` (``runs.db`` is kept and checked too), starts
``--procs`` indexers at once, waits, and then checks: every process exited 0, SQLite's
``PRAGMA integrity_check`` says ``ok``, the index holds every note, and a follow-up
``update`` has nothing to do. Also, with ``--kill``, one round in three (or the last of a short run) kills an indexer
with SIGKILL in the middle of its parse and checks that no parse worker outlives it.

    python bench/stress_index.py --rounds 300 --notes 5000          # the long run, on demand
    python bench/stress_index.py --rounds 5 --notes 450 --procs 2   # what tests/stress runs

Library processes (``python -c 'Vault(...).index()'``) are used rather than the console
script so that a round costs a fork, not a CLI start-up; ``--cli`` uses ``paperkb`` itself.
Prints one line per failed round and a summary; exits 1 if any round failed.
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

INDEX_ONE = "import sys; from kb.vault import Vault; Vault(sys.argv[1]).index(workers=int(sys.argv[2]))"


def make_vault(out: Path, n_notes: int) -> Path:
    from synth_vault import generate

    if not (out / ".stress-ready").exists() or len(list(out.rglob("*.md"))) != n_notes:
        generate(out, n_notes)
        (out / ".stress-ready").write_text(str(n_notes))
    return out


def _runs_db(vault: Path) -> Path:
    """A runs.db with one row: it must come through every round untouched."""
    db = vault / ".paperkb" / "runs.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE IF NOT EXISTS runs(id TEXT PRIMARY KEY)")
    conn.execute("INSERT OR IGNORE INTO runs VALUES ('stress-sentinel')")
    conn.commit()
    conn.close()
    return db


def _command(vault: Path, workers: int, cli: bool) -> list[str]:
    if cli:
        return [sys.executable, "-m", "cli.app", "--vault", str(vault), "index", "--quiet"]
    return [sys.executable, "-c", INDEX_ONE, str(vault), str(workers)]


def _children(pid: int) -> list[int]:
    try:
        import psutil

        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except Exception:
        return []


def _alive(pids: list[int]) -> list[int]:
    try:
        import psutil
    except ImportError:
        return []
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.Error:
            pass
    return out


def check_index(vault: Path, n_notes: int) -> str | None:
    """None when the index is whole, else what is wrong."""
    db = vault / ".paperkb" / "index.db"
    try:
        conn = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=60)
        ok = conn.execute("PRAGMA integrity_check").fetchone()[0]
        count = conn.execute("SELECT COUNT(*) FROM notes").fetchone()[0]
        conn.close()
    except sqlite3.Error as exc:
        return f"index unreadable: {exc}"
    if ok != "ok":
        return f"integrity_check: {ok}"
    if count != n_notes:
        return f"index holds {count} notes, vault has {n_notes}"
    runs = sqlite3.connect(vault / ".paperkb" / "runs.db")
    try:
        if runs.execute("SELECT COUNT(*) FROM runs WHERE id='stress-sentinel'").fetchone()[0] != 1:
            return "runs.db lost its row"
    finally:
        runs.close()
    from kb.vault import Vault

    with Vault(vault) as v:
        stats = v.index(workers=1)
    if stats.changed:
        return f"a follow-up index still had work: parsed {stats.parsed}, deleted {stats.deleted}"
    return None


def race_round(vault: Path, n_notes: int, procs: int, workers: int, cli: bool, kill: bool) -> str | None:
    from kb.index import remove_index_files

    remove_index_files(vault / ".paperkb" / "index.db")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    started = [subprocess.Popen(_command(vault, workers, cli), env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, start_new_session=True) for _ in range(procs)]
    orphans: list[int] = []
    if kill:
        victim = started[0]
        deadline = time.monotonic() + 30
        kids: list[int] = []
        while time.monotonic() < deadline and victim.poll() is None:
            kids = _children(victim.pid)
            if len(kids) >= min(workers, 2):
                break
            time.sleep(0.02)
        time.sleep(0.2)
        if victim.poll() is None:
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            until = time.monotonic() + 3  # the workers' parent watch polls every 0.5 s
            while _alive(kids) and time.monotonic() < until:
                time.sleep(0.05)
            orphans = _alive(kids)
            for pid in orphans:
                os.kill(pid, signal.SIGKILL)
    codes = []
    for i, p in enumerate(started):
        _, err = p.communicate(timeout=600)
        if kill and i == 0:
            continue
        codes.append((p.returncode, err.decode(errors="replace").strip().splitlines()[-1:] if err else []))
    bad = [c for c in codes if c[0] != 0]
    if orphans:
        return f"{len(orphans)} parse worker(s) outlived a killed indexer"
    if bad:
        return f"exit codes {[c for c, _ in codes]}: {bad[0][1]}"
    return check_index(vault, n_notes)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vault", type=Path, default=Path("/tmp/paperkb-stress-vault"))
    ap.add_argument("--notes", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cli", action="store_true", help="race the paperkb console command itself")
    ap.add_argument("--kill", action="store_true", help="SIGKILL one indexer every third round")
    args = ap.parse_args(argv)

    vault = make_vault(args.vault, args.notes)
    _runs_db(vault)
    failures = 0
    t0, c0 = time.perf_counter(), os.times()
    for r in range(args.rounds):
        kill = args.kill and (r % 3 == 2 or r == args.rounds - 1 < 2)  # short runs: the last round
        problem = race_round(vault, args.notes, args.procs, args.workers, args.cli, kill)
        if problem:
            failures += 1
            print(f"round {r + 1}{' (kill)' if kill else ''}: {problem}", flush=True)
    wall = time.perf_counter() - t0
    c1 = os.times()
    cpu = (c1.children_user - c0.children_user) + (c1.children_system - c0.children_system)
    with open("/proc/loadavg") as fh:
        load = fh.read().split()[0]
    print(f"{args.rounds} rounds x {args.procs} cold indexers of {args.notes} notes: {failures} failed; "
          f"wall {wall:.1f} s, child CPU {cpu:.1f} s, load average {load}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
