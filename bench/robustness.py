"""Replay the hostile-user attacks of issue 12 and record time and peak memory of each.

Each attack runs in a fresh Python process (the library, as the CLI would call it) with a
time limit; the table gives its wall and CPU time, the peak resident memory of that
process (its parse workers' peak in brackets when it had some) and whether it held.

    python bench/robustness.py                 # writes a Markdown table to stdout
    python bench/robustness.py --big-mb 50     # the size of the large note searched

The concurrency attacks (racing cold indexers, kill -9 mid-index) are in
``bench/stress_index.py``; their figures are pasted into bench/results/robustness.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Runs in the child: the attack's code, then its own resource use as JSON on the last line.
WRAPPER = """
import json, resource, sys, time
t0, c0 = time.perf_counter(), time.process_time()
result = None
{body}
ru, rc = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({{"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0 + rc.ru_utime + rc.ru_stime,
                  "rss_mb": ru.ru_maxrss / 1024, "child_rss_mb": rc.ru_maxrss / 1024, "result": result}}))
"""


def run_attack(body: str, *args: str, timeout: float = 300) -> dict:
    code = WRAPPER.format(body=textwrap.indent(textwrap.dedent(body), ""))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    try:
        out = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True,
                             timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"held": False, "error": f"still running after {timeout:.0f} s"}
    if out.returncode != 0:
        return {"held": False, "error": (out.stderr.strip().splitlines() or [f"exit {out.returncode}"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def lorem_note(path: Path, megabytes: float) -> None:
    rng = random.Random(1)
    words = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor".split()
    line_words = 12
    n_lines = int(megabytes * 1e6 / 80)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("# Big\n\n")
        for _ in range(n_lines):
            fh.write(" ".join(rng.choice(words) for _ in range(line_words)) + "\n")


def attacks(work: Path, big_mb: float) -> list[tuple[str, str, dict]]:
    rows = []

    # 2. a 2 MB Latin-1 note
    v = work / "latin1"
    v.mkdir(parents=True)
    line = "r\xe9sum\xe9 na\xefve caf\xe9 \xe0 la cr\xe8me br\xfbl\xe9e, d\xe9j\xe0 vu " * 3 + "\n"
    (v / "latin1.md").write_bytes((line * (2_000_000 // len(line))).encode("latin-1"))
    r = run_attack("""
        from kb.vault import Vault
        with Vault(sys.argv[1]) as v:
            v.index(workers=1)
            bad = [p.line for p in v.problems() if p.message.startswith("invalid UTF-8")]
        result = f"bad lines reported at {bad[:3]}..., last issue line {bad[-1]}"
    """, str(v))
    r["held"] = "error" not in r and r["cpu"] < 1.0
    rows.append(("2 MB Latin-1 note, cold index (whole process)", "< 1 s, true line numbers", r))

    # 3. search in a large note
    v = work / "big"
    v.mkdir()
    lorem_note(v / "big.md", big_mb)
    (v / "small.md").write_text("# Small\n\nlorem here\n", encoding="utf-8")
    r = run_attack("""
        from kb.vault import Vault
        from kb.search import search
        with Vault(sys.argv[1]) as v:
            v.index(workers=1)
            search(v, "lorem", limit=5)  # builds the full-text tables
        result = "indexed and full-text tables built"
    """, str(v), timeout=900)
    r["held"] = "error" not in r
    rows.append((f"{big_mb:g} MB note: index + first search (builds the FTS tables)", "once per change", r))
    r = run_attack("""
        from kb.vault import Vault
        from kb.search import search
        with Vault(sys.argv[1]) as v:
            v.index(workers=1)
            times = []
            for _ in range(2):  # the first call also imports the query package
                t, c = time.perf_counter(), time.process_time()
                hits = search(v, "lorem", limit=5)
                times.append(f"{(time.perf_counter() - t) * 1000:.0f} ms wall / "
                             f"{(time.process_time() - c) * 1000:.0f} ms CPU")
        result = (f"search() in process: first {times[0]}, again {times[1]}; "
                  f"snippet: {hits[0].marked()[:50]!r}")
    """, str(v))
    # judged on CPU time: on the shared 2-core machine wall time is several times CPU
    r["held"] = "error" not in r and r["cpu"] < 1.0
    rows.append((f"`search lorem` with one {big_mb:g} MB note (whole process)", "well under 1 s", r))

    # 4. FIFO behind a note name
    v = work / "fifo"
    v.mkdir()
    (v / "a.md").write_text("# A\n", encoding="utf-8")
    os.mkfifo(v / "p")
    os.symlink("p", v / "x.md")
    os.mkfifo(v / "y.md")
    r = run_attack("""
        from kb.vault import Vault
        with Vault(sys.argv[1]) as v:
            result = f"notes indexed: {v.paths()}"
    """, str(v), timeout=30)
    r["held"] = "error" not in r
    rows.append(("`mkfifo p; ln -s p x.md` and a FIFO named y.md", "never read, never blocks", r))

    # 8. same-size edit with the mtime put back
    v = work / "ctime"
    v.mkdir()
    (v / "n.md").write_text("# Before\n", encoding="utf-8")
    r = run_attack("""
        import os
        from kb.vault import Vault
        p = sys.argv[1] + "/n.md"
        with Vault(sys.argv[1]) as v:
            v.index()
            st = os.stat(p)
            time.sleep(0.02)
            open(p, "w").write("# Xefore\\n")
            os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
            v.index()
            result = f"title after the edit: {v.note_at('n.md').title!r}"
    """, str(v))
    r["held"] = "error" not in r and "Xefore" in str(r.get("result"))
    rows.append(("same-size edit, mtime restored with `touch -d`", "seen (ctime compared)", r))

    # 9. disk full while indexing (SQLite's max_page_count is how a full disk looks to it)
    v = work / "full"
    v.mkdir()
    for i in range(200):
        (v / f"n{i}.md").write_text(f"# N{i}\n\n" + "text " * 200, encoding="utf-8")
    r = run_attack("""
        from kb import index as I
        from kb.errors import PaperkbError
        from kb.vault import Vault
        with Vault(sys.argv[1]) as v:
            conn = v.connect()
            I.ensure_schema(conn)
            conn.execute(f"PRAGMA max_page_count={conn.execute('PRAGMA page_count').fetchone()[0] + 2}")
            try:
                v.index()
                result = "no error?"
            except PaperkbError as exc:
                result = f"error: {exc}"
        with Vault(sys.argv[1]) as v:
            result += f" / next run indexed {v.index().parsed} notes"
    """, str(v))
    r["held"] = "error" not in r and str(r.get("result", "")).startswith("error: disk full while writing")
    rows.append(("disk full during a cold index", "one plain line; nothing half-written", r))

    # the hostile vault
    sys.path.insert(0, str(ROOT / "tests" / "robustness"))
    from hostile_vault import build

    v = build(work / "hostile")
    r = run_attack("""
        from kb.vault import Vault
        from kb.search import search
        with Vault(sys.argv[1]) as v:
            s = v.index()
            n = len(v.problems())
            search(v, "exact")
        result = f"{s.notes} notes, {n} problems reported"
    """, str(v), timeout=120)
    r["held"] = "error" not in r
    rows.append(("the hostile vault of tests/robustness (13 notes, FIFOs, links out, bombs)", "indexed, searched",
                 r))
    return rows


def table(rows: list[tuple[str, str, dict]]) -> str:
    out = ["| attack | expected | held | wall | CPU | peak RSS | what happened |", "|---|---|---|---|---|---|---|"]
    for name, expected, r in rows:
        if "wall" in r:
            rss = f"{r['rss_mb']:.0f} MB"
            if r.get("child_rss_mb", 0) > 1:
                rss += f" ({r['child_rss_mb']:.0f} MB)"
            out.append(f"| {name} | {expected} | {'yes' if r['held'] else '**no**'} | {r['wall']:.2f} s | "
                       f"{r['cpu']:.2f} s | {rss} | {r.get('result')} |")
        else:
            out.append(f"| {name} | {expected} | **no** | - | - | - | {r.get('error')} |")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/paperkb-robustness"))
    ap.add_argument("--big-mb", type=float, default=50)
    args = ap.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    with open("/proc/loadavg") as fh:
        load0 = fh.read().split()[0]
    rows = attacks(args.work, args.big_mb)
    with open("/proc/loadavg") as fh:
        load1 = fh.read().split()[0]
    print(f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average {load0} at the start, "
          f"{load1} at the end; Python {sys.version.split()[0]}\n")
    print(table(rows))
    return 0 if all(r.get("held") for _, _, r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
