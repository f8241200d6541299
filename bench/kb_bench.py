"""Benchmark the knowledge base on a synthetic vault, side by side with obsidiantools.

Measures, on N notes (default 10,000) made by ``bench/synth_vault.py``:

* cold index (``paperkb index`` in a fresh process, no ``.paperkb/``), its peak RSS
  summed over the main process and its parser workers (sampled with psutil);
* warm index with no change, and re-index after one note changed (fresh processes, so
  interpreter start is included; the in-process figure is printed beside it);
* every read command on the warm index (issue 14: <= 0.3 s wall each): ``show``, ``links``,
  ``backlinks``, ``query`` with ``FROM #tag WHERE ... SORT ... LIMIT``, ``search``,
  ``claims`` and ``status`` with their filters (median of several fresh processes);
* ``export json`` (<= 2 s, <= 300 MB peak RSS);
* obsidiantools (the ``bench`` extra) building its graph, ``connect()`` then ``gather()``,
  and paperkb's cold index of the *same* ``--otools-notes`` notes (default 2,000) in the
  same run, each in a fresh process: the speed-up is the ratio of the two (>= 30x).

Usage: python bench/kb_bench.py [--notes 10000] [--dir /tmp/kbbench] [--otools-notes 2000]
       [--out bench/results/kb.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CODE = ROOT  # the paperkb tree the commands run from (--code: e.g. an older export, to compare)
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import synth_vault  # noqa: E402

PAPERKB = [sys.executable, "-m", "cli.app"]

TARGETS = {
    "cold": 5.0,
    "warm": 0.5,
    "one_change": 0.5,
    "show": 0.3,
    "backlinks": 0.3,
    "read": 0.3,  # every read command
    "rss_mb": 500.0,
    "speedup": 30.0,
    "export": 2.0,
    "export_mb": 300.0,
}

# Read commands on the warm index (issue 14), after the vault option; a command whose
# filters this tree's CLI does not know yet is measured without them (the report says so).
TAG = "systems/gpu"


def read_commands(key: str) -> list[tuple[str, list[str], list[str] | None]]:
    """(label, arguments, fallback arguments) of each read command to time."""
    return [
        ("show", ["show", key], None),
        ("links", ["links", key], None),
        ("backlinks", ["backlinks", key], None),
        ("query FROM #tag WHERE SORT LIMIT", ["query", f"TABLE year, length(authors) AS n FROM #{TAG} "
                                              "WHERE year >= 2015 SORT year DESC, file.name LIMIT 20"], None),
        ("search", ["search", "attention kernel", "--limit", "20"], None),
        ("claims --tag", ["claims", "--tag", TAG], ["claims"]),
        ("claims --note", ["claims", "--note", key], ["claims"]),
        ("status --tag --status", ["status", "--tag", TAG, "--status", "unverified"], ["status"]),
        ("status --note", ["status", "--note", key], ["status"]),
    ]


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


class PeakRSS:
    """Samples the summed RSS of a process and all its children until it exits."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        import psutil

        self.proc = psutil.Process(pid)
        self.peak = 0
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                procs = [self.proc, *self.proc.children(recursive=True)]
                total = 0
                for p in procs:
                    try:
                        total += p.memory_info().rss
                    except psutil.Error:
                        pass
                self.peak = max(self.peak, total)
            except psutil.Error:
                break
            time.sleep(self.interval)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak / 2**20


CPU: dict[str, float] = {}  # CPU seconds (user + sys, children included) of the last run_timed


def _children_cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_timed(args: list[str], *, rss: bool = False) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MB, 0 unless asked) and stdout of one subprocess; its CPU
    seconds (with its own children) land in ``CPU["last"]``."""
    env = dict(os.environ, PYTHONPATH=str(CODE))
    # Python as users run it: compiled modules cached in __pycache__ (a sandbox that sets
    # PYTHONDONTWRITEBYTECODE recompiles every paperkb module in every command, ~0.05 s).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    cpu0 = _children_cpu()
    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=CODE)
    sampler = PeakRSS(proc.pid) if rss else None
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    peak = sampler.stop() if sampler else 0.0
    CPU["last"] = _children_cpu() - cpu0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({proc.returncode}): {err.strip()[-2000:]}")
    return wall, peak, out


def median_wall(args: list[str], repeat: int) -> tuple[float, float]:
    """Median wall and CPU seconds over ``repeat`` runs (after one warm-up run)."""
    run_timed(args)  # page cache and index warm
    walls, cpus = [], []
    for _ in range(repeat):
        walls.append(run_timed(args)[0])
        cpus.append(CPU["last"])
    return statistics.median(walls), statistics.median(cpus)


def in_process_index(vault: Path) -> float:
    code = (
        "import sys, time; from kb.vault import Vault; v = Vault(sys.argv[1]); "
        "s = v.index(); print(s.seconds, s.parsed)"
    )
    out = run_timed([sys.executable, "-c", code, str(vault)])[2].split()
    return float(out[0])


def bench_paperkb(vault: Path, repeat: int) -> dict:
    import shutil

    res: dict = {}

    def first_reads(key: str) -> list:
        """The first query, search, claims and status right after an index: each may have
        to build what it reads beside the index (the query engine's tables, the full-text
        index, the claims table) when the index command did not."""
        rows, seen = [], set()
        for label, args, _fallback in read_commands(synth_vault.citekey(42)):
            command = label.split()[0]
            if command in ("query", "search", "claims", "status") and command not in seen:
                seen.add(command)
                wall, _peak, _out = run_timed([*PAPERKB, "--vault", str(vault), *args])
                rows.append((label, args, wall, CPU["last"]))
                print(f"  first {label} after {key}: {wall:.3f} s wall, {CPU['last']:.3f} s CPU", flush=True)
        return rows

    # the index proper (notes, links, names, tags; what obsidiantools builds too) ...
    shutil.rmtree(vault / ".paperkb", ignore_errors=True)
    wall, peak, out = run_timed([*PAPERKB, "--vault", str(vault), "index", "--index-only"], rss=True)
    res["cold"], res["rss_mb"], res["cold_out"], res["cold_cpu"] = wall, peak, out.strip(), CPU["last"]
    print(f"cold index (--index-only): {wall:.2f} s wall, {CPU['last']:.1f} s CPU, peak RSS {peak:.0f} MB  "
          f"[{out.strip()}]", flush=True)
    res["first_lazy"] = first_reads("index --index-only")
    # ... and the whole command, which also prepares the tables the read commands use
    shutil.rmtree(vault / ".paperkb", ignore_errors=True)
    wall, peak, out = run_timed([*PAPERKB, "--vault", str(vault), "index"], rss=True)
    res["cold_full"], res["cold_full_cpu"], res["cold_full_out"] = wall, CPU["last"], out.strip()
    res["rss_mb"] = max(res["rss_mb"], peak)
    print(f"cold `paperkb index`: {wall:.2f} s wall, {CPU['last']:.1f} s CPU  [{out.strip()}]", flush=True)
    res["first"] = first_reads("paperkb index")

    res["warm"], res["warm_cpu"] = median_wall([*PAPERKB, "--vault", str(vault), "index", "-q"], repeat)
    res["warm_inproc"] = in_process_index(vault)
    print(f"warm index: {res['warm']:.3f} s wall, {res['warm_cpu']:.3f} s CPU "
          f"({res['warm_inproc']:.3f} s in-process)", flush=True)

    # one changed note: append a line (a new link) to one note, then re-index
    target = sorted((vault / "topic03").glob("*.md"))[5]
    times, cpus, inproc = [], [], []
    for i in range(repeat):
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(f"\nEdited {i}: see [[{synth_vault.citekey(i + 1)}]].\n")
        times.append(run_timed([*PAPERKB, "--vault", str(vault), "index", "-q"])[0])
        cpus.append(CPU["last"])
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(f"\nEdited again {i}.\n")
        inproc.append(in_process_index(vault))
    res["one_change"], res["one_change_inproc"] = statistics.median(times), statistics.median(inproc)
    res["one_change_cpu"] = statistics.median(cpus)
    print(f"one changed note: {res['one_change']:.3f} s wall, {res['one_change_cpu']:.3f} s CPU "
          f"({res['one_change_inproc']:.3f} s in-process)", flush=True)

    key = synth_vault.citekey(42)
    res["show"], res["show_cpu"] = median_wall([*PAPERKB, "--vault", str(vault), "show", key], repeat)
    res["backlinks"], res["backlinks_cpu"] = median_wall([*PAPERKB, "--vault", str(vault), "backlinks", key], repeat)
    # What every paperkb command pays before it runs: the interpreter, cli.app and typer.
    res["baseline"], res["baseline_cpu"] = median_wall([sys.executable, "-c", "import cli.app"], repeat)
    print(f"show: {res['show']:.3f} s ({res['show_cpu']:.3f} s CPU), backlinks: {res['backlinks']:.3f} s "
          f"({res['backlinks_cpu']:.3f} s CPU), CLI start-up floor: {res['baseline']:.3f} s "
          f"({res['baseline_cpu']:.3f} s CPU); medians of {repeat}", flush=True)

    res["read"] = []
    for label, args, fallback in read_commands(key):
        used = args
        try:
            wall, cpu = median_wall([*PAPERKB, "--vault", str(vault), *args], repeat)
        except SystemExit as exc:
            if fallback is None or "No such option" not in str(exc):
                raise
            used = fallback
            wall, cpu = median_wall([*PAPERKB, "--vault", str(vault), *fallback], repeat)
        res["read"].append((label, used, wall, cpu))
        print(f"{label}: {wall:.3f} s wall, {cpu:.3f} s CPU  [{' '.join(used)}]", flush=True)

    walls, cpus, rss = [], [], []
    for _ in range(max(1, repeat // 2)):
        wall, peak, _out = run_timed([*PAPERKB, "--vault", str(vault), "export", "json", "-o",
                                      str(vault.parent / "export.json")], rss=True)
        walls.append(wall)
        cpus.append(CPU["last"])
        rss.append(peak)
    res["export"], res["export_cpu"], res["export_mb"] = min(walls), min(cpus), max(rss)
    print(f"export json: {res['export']:.2f} s wall (best of {len(walls)}), {res['export_cpu']:.2f} s CPU, "
          f"peak RSS {res['export_mb']:.0f} MB", flush=True)
    return res


def bench_obsidiantools(vault: Path, n_all: int, n_sub: int, workdir: Path) -> dict | None:
    """obsidiantools and paperkb's cold index on the same ``n_sub`` notes, in the same run."""
    import shutil

    try:
        import obsidiantools  # noqa: F401
    except ImportError:
        print("obsidiantools not installed (pip install -e '.[bench]'): skipped", flush=True)
        return None
    sub = synth_vault.generate(workdir / f"otools-{n_sub}", n_sub) if n_sub < n_all else vault
    code = (
        "import sys, time, pathlib, obsidiantools.api as otools; t = time.perf_counter(); "
        "v = otools.Vault(pathlib.Path(sys.argv[1])).connect().gather(); "
        "print(time.perf_counter() - t, len(v.md_file_index))"
    )
    wall, peak, out = run_timed([sys.executable, "-c", code, str(sub)], rss=True)
    seconds, count = out.split()
    res = {"notes": int(count), "wall": wall, "inproc": float(seconds), "rss_mb": peak, "cpu": CPU["last"]}
    res["per_note_ms"] = 1000 * res["inproc"] / res["notes"]
    # paperkb's cold index of the same notes, right after (fresh process, no .paperkb/)
    # like for like: obsidiantools reads notes, links and front matter and builds a graph,
    # so paperkb's index alone (no query, search or claims tables: --index-only)
    shutil.rmtree(sub / ".paperkb", ignore_errors=True)
    res["pk_wall"] = run_timed([*PAPERKB, "--vault", str(sub), "index", "-q", "--index-only"])[0]
    res["pk_cpu"] = CPU["last"]
    # and the whole `paperkb index` (with those tables), for the record
    shutil.rmtree(sub / ".paperkb", ignore_errors=True)
    res["pk_full_wall"] = run_timed([*PAPERKB, "--vault", str(sub), "index", "-q"])[0]
    res["pk_full_cpu"] = CPU["last"]
    res["speedup"] = res["wall"] / res["pk_wall"]
    res["speedup_cpu"] = res["cpu"] / res["pk_cpu"]
    print(f"same {count} notes: obsidiantools {wall:.1f} s wall / {res['cpu']:.1f} s CPU "
          f"({res['per_note_ms']:.1f} ms a note), paperkb cold {res['pk_wall']:.2f} s wall / {res['pk_cpu']:.1f} s CPU: "
          f"{res['speedup']:.1f}x wall, {res['speedup_cpu']:.1f}x CPU; whole `paperkb index` (with the read "
          f"tables) {res['pk_full_wall']:.2f} s wall: {res['wall'] / res['pk_full_wall']:.1f}x", flush=True)
    return res


def ok(value: float, target: float, *, higher: bool = False) -> str:
    good = value >= target if higher else value <= target
    return "yes" if good else "**no**"


def write_report(path: Path, n: int, res: dict, ot: dict | None, started: str,
                 load_start: float | None = None) -> None:
    lines = [
        "# Knowledge-base benchmark (bench/kb_bench.py)",
        "",
        f"- Date: {started}" + ("" if CODE == ROOT else f"; code from {CODE}"),
        f"- Machine: {os.cpu_count()}-core CPU, {cpu_model()}; Python {platform.python_version()}; load average "
        + (f"{load_start:.1f} at the start, " if load_start is not None else "")
        + f"{os.getloadavg()[0]:.1f} at the end (1-minute; the machine is shared with other jobs)",
        f"- Vault: {n} synthetic notes from bench/synth_vault.py (seed template, ~2 KB, 10 links and "
        "3 questions each)",
        "- Every step is a fresh `python -m cli.app` process, so wall times include interpreter start "
        "(with Python's usual bytecode cache in `__pycache__`; the first, warm-up run writes it). "
        "CPU = user + sys seconds of that process and its parser workers: on a busy machine it shows "
        "what an idle one would take better than wall time does. In-process figures (the index update "
        "alone) in brackets.",
        "",
        "| measure | wall | CPU | target (wall) | met |",
        "|---|---|---|---|---|",
        f"| cold index (`index --index-only`) | {res['cold']:.2f} s | {res['cold_cpu']:.1f} s | <= {TARGETS['cold']:.0f} s | "
        f"{ok(res['cold'], TARGETS['cold'])} |",
        f"| warm index, no change | {res['warm']:.3f} s ({res['warm_inproc']:.3f} s) | {res['warm_cpu']:.3f} s | "
        f"<= {TARGETS['warm']} s | {ok(res['warm'], TARGETS['warm'])} |",
        f"| re-index after one changed note | {res['one_change']:.3f} s ({res['one_change_inproc']:.3f} s) | "
        f"{res['one_change_cpu']:.3f} s | <= {TARGETS['one_change']} s | {ok(res['one_change'], TARGETS['one_change'])} |",
        f"| `paperkb show` | {res['show']:.3f} s | {res['show_cpu']:.3f} s | <= {TARGETS['show']} s | "
        f"{ok(res['show'], TARGETS['show'])} |",
        f"| `paperkb backlinks` | {res['backlinks']:.3f} s | {res['backlinks_cpu']:.3f} s | "
        f"<= {TARGETS['backlinks']} s | {ok(res['backlinks'], TARGETS['backlinks'])} |",
        *[f"| `paperkb {' '.join(used)}` | {wall:.3f} s | {cpu:.3f} s | <= {TARGETS['read']} s | "
          f"{ok(wall, TARGETS['read'])} |" for label, used, wall, cpu in res["read"]],
        f"| cold `paperkb index` (the index, then the query, search and claims tables) | {res['cold_full']:.2f} s | "
        f"{res['cold_full_cpu']:.1f} s | | |",
        *[f"| first `paperkb {' '.join(args)}` after `paperkb index` | {wall:.3f} s | {cpu:.3f} s | "
          f"<= {TARGETS['read']} s | {ok(wall, TARGETS['read'])} |" for label, args, wall, cpu in res.get("first", [])],
        *[f"| first `paperkb {' '.join(args)}` after `index --index-only` (builds its table) | {wall:.3f} s | "
          f"{cpu:.3f} s | | |" for label, args, wall, cpu in res.get("first_lazy", [])],
        f"| `paperkb export json -o FILE` (best of runs) | {res['export']:.2f} s | {res['export_cpu']:.2f} s | "
        f"<= {TARGETS['export']:.0f} s | {ok(res['export'], TARGETS['export'])} |",
        f"| peak RSS of `export json` | {res['export_mb']:.0f} MB | | <= {TARGETS['export_mb']:.0f} MB | "
        f"{ok(res['export_mb'], TARGETS['export_mb'])} |",
        f"| (CLI start-up floor: `python -c 'import cli.app'`) | {res['baseline']:.3f} s | "
        f"{res['baseline_cpu']:.3f} s | | |",
        f"| peak RSS of cold index (main + workers) | {res['rss_mb']:.0f} MB | | <= {TARGETS['rss_mb']:.0f} MB | "
        f"{ok(res['rss_mb'], TARGETS['rss_mb'])} |",
    ]
    if ot:
        lines.append(
            f"| obsidiantools cold (`connect().gather()`), {ot['notes']} notes | {ot['wall']:.1f} s "
            f"({ot['per_note_ms']:.1f} ms a note) | {ot['cpu']:.1f} s | | |"
        )
        lines.append(f"| paperkb cold index of the same {ot['notes']} notes, same run (`index --index-only`) | "
                     f"{ot['pk_wall']:.2f} s | {ot['pk_cpu']:.1f} s | | |")
        lines.append(f"| the whole `paperkb index` of those notes (with the query, search and claims tables) | "
                     f"{ot['pk_full_wall']:.2f} s | {ot['pk_full_cpu']:.1f} s | | |")
        lines.append(f"| speed-up over obsidiantools, cold, same notes | {ot['speedup']:.1f}x | "
                     f"{ot['speedup_cpu']:.1f}x | >= {TARGETS['speedup']:.0f}x | "
                     f"{ok(ot['speedup'], TARGETS['speedup'], higher=True)} |")
    else:
        lines.append("| obsidiantools | not installed: skipped | | | |")
    lines += ["", f"Cold index output: `{res['cold_out']}`; whole command: `{res['cold_full_out']}`", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--notes", type=int, default=10_000)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/paperkb-bench"))
    ap.add_argument("--otools-notes", type=int, default=2000,
                    help="notes for the side-by-side cold index with obsidiantools; 0 skips it")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "kb.md")
    ap.add_argument("--reuse", action="store_true", help="reuse an existing generated vault in --dir")
    ap.add_argument("--code", type=Path, default=ROOT,
                    help="run the paperkb code of this tree (e.g. `git archive <commit>` unpacked) to compare")
    args = ap.parse_args()
    global CODE
    CODE = args.code.resolve()
    started = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load_start = os.getloadavg()[0]

    vault = args.dir / f"vault-{args.notes}"
    if not (args.reuse and vault.is_dir()):
        t = time.perf_counter()
        synth_vault.generate(vault, args.notes)
        print(f"generated {args.notes} notes in {time.perf_counter() - t:.1f} s", flush=True)
    res = bench_paperkb(vault, args.repeat)
    ot = None
    if args.otools_notes:
        ot = bench_obsidiantools(vault, args.notes, min(args.otools_notes, args.notes), args.dir)
    write_report(args.out, args.notes, res, ot, started, load_start)


if __name__ == "__main__":
    main()
