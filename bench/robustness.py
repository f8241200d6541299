"""Replay the hostile-user attacks of issue 12 (or 23) and record time and peak memory of each.

Each attack runs in a fresh Python process (the library, as the CLI would call it) with a
time limit; the table gives its wall and CPU time, the peak resident memory of that
process (its parse workers' peak in brackets when it had some) and whether it held.

    python bench/robustness.py                 # writes a Markdown table to stdout
    python bench/robustness.py --big-mb 50     # the size of the large note searched
    python bench/robustness.py --issue 23      # issue 23: writes outside OUT, exports, bounds

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


# Issue 23: each attack runs the real command line in a child of the measured process
# (its peak memory is the "(children)" figure); `CLI` is defined in each attack's body.
CLI = """
import subprocess, pathlib
def cli(*a, stdin=None):
    return subprocess.run([sys.executable, "-m", "cli.app", *map(str, a)], capture_output=True, text=True,
                          timeout=300, input=stdin)
"""


def attacks_23(work: Path) -> list[tuple[str, str, dict]]:
    rows = []

    def attack(name: str, expected: str, body: str, *args: str) -> None:
        r = run_attack(CLI + textwrap.dedent(body), *args)
        r["held"] = "error" not in r and bool(r.get("result")) and not str(r["result"]).startswith("FAILED")
        rows.append((name, expected, r))

    v = work / "deep" / "vault"
    v.mkdir(parents=True)
    (v / "A.md").write_text("# A\n")
    (work / "esc.bib").write_text("@article{../../escape1, year={2020}}\n@article{/tmp/p23-abs, year={2021}}\n")
    attack("`import bibtex` of `@article{../../escape1}` and an absolute key", "nothing written outside the vault", """
        v = pathlib.Path(sys.argv[1]); r = cli("--vault", v, "import", "bibtex", sys.argv[2])
        out = [p for p in v.parent.parent.rglob("*.md") if not p.is_relative_to(v)] + list(pathlib.Path("/tmp").glob("p23-abs*"))
        result = f"exit {r.returncode}; created {sorted(p.name for p in v.glob('*.md'))}; outside: {out or 'none'}"
        result = result if not out else "FAILED " + result
    """, str(v), str(work / "esc.bib"))

    v = work / "links"
    v.mkdir()
    (v / "L.md").write_text("# L\n\n[h](evil.html) [s](evil.svg) [e](.env) [db](.paperkb/secret.db) ![[evil.svg]]\n"
                            "![p](https://tracker.invalid/p.png)\n")
    for name, text in (("evil.html", "<script>alert(1)</script>"), ("evil.svg", "<svg><script>alert(1)</script></svg>"),
                       (".env", "SECRET=1")):
        (v / name).write_text(text)
    (v / ".paperkb").mkdir()
    (v / ".paperkb" / "secret.db").write_text("host=secret")
    attack("site: links to .html, .svg, .env, .paperkb/secret.db; a remote image", "only the SVG, as an <img>; no remote load", """
        v = pathlib.Path(sys.argv[1]); out = v.parent / "site-links"; r = cli("--vault", v, "export", "site", out)
        files = sorted(p.name.split("-", 1)[1] for p in (out / "files").iterdir())
        page = next((out / "notes").glob("l-*.html")).read_text()
        ok = files == ["evil.svg"] and 'src="https://' not in page and "img-src 'self' data:" in page
        result = ("" if ok else "FAILED ") + f"exit {r.returncode}; published {files}; remote image as a link: {'remote-image' in page}"
    """, str(v))

    attack("`export site U --force` over a user's index.html and site.css; a link planted at the manifest",
           "user files kept, exit 1; link refused", """
        v = pathlib.Path(sys.argv[1]); u = v.parent / "userdir"; (u / "assets").mkdir(parents=True)
        (u / "index.html").write_text("mine"); (u / "assets" / "site.css").write_text("mine")
        r1 = cli("--vault", v, "export", "site", u, "--force")
        kept = (u / "index.html").read_text() == "mine" == (u / "assets" / "site.css").read_text()
        victim = v.parent / "victim.txt"; victim.write_text("precious"); (u / ".paperkb-site.json").unlink()
        (u / ".paperkb-site.json").symlink_to(victim); r2 = cli("--vault", v, "export", "site", u, "--force")
        ok = kept and r1.returncode == 1 and r2.returncode == 1 and victim.read_text() == "precious"
        result = ("" if ok else "FAILED ") + f"exit {r1.returncode}, user files kept: {kept}; linked manifest: exit {r2.returncode}, target kept"
    """, str(v))

    attack("`export markdown` into the vault or a folder inside it", "refused, exit 2", """
        v = pathlib.Path(sys.argv[1]); r = cli("--vault", v, "export", "markdown", v / "sub", "--force")
        result = ("" if r.returncode == 2 else "FAILED ") + f"exit {r.returncode}: {r.stderr.strip()[:80]}"
    """, str(v))

    v = work / "summary"
    v.mkdir()
    (v / "P.md").write_text("---\ntags: [paper]\nauthors: 'A `<img src=x onerror=alert(1)>` B'\n---\n"
                            "# T `<img src=x onerror=alert(1)>` end\n\n> [!claim] c `<img src=x onerror=alert(1)>`\n")
    attack("summary title, author, claim `` T `<img onerror>` end `` rendered by markdown-it (HTML on)",
           "no live HTML", """
        from markdown_it import MarkdownIt
        v = pathlib.Path(sys.argv[1]); r = cli("--vault", v, "export", "summary")
        html = MarkdownIt("commonmark", {"html": True}).enable("table").render(r.stdout)
        result = ("FAILED " if "<img" in html else "") + f"exit {r.returncode}; <img in rendered HTML: {'<img' in html}"
    """, str(v))

    v = work / "csv"
    v.mkdir()
    (v / "P.md").write_text("---\ntags: [paper]\nnote: '=HYPERLINK(\"http://x.invalid\")'\n---\n# P\n")
    attack("`query ... -f csv` with a `=HYPERLINK(...)` cell", "prefixed with '", """
        v = pathlib.Path(sys.argv[1]); r = cli("--vault", v, "query", "TABLE note FROM #paper", "-f", "csv")
        ok = "'=HYPERLINK" in r.stdout and ',=HYPERLINK' not in r.stdout
        result = ("" if ok else "FAILED ") + f"cell: {r.stdout.splitlines()[-1][-40:]}"
    """, str(v))

    v = work / "hungry"
    v.mkdir()
    (v / "H.md").write_text("# H\n\n> [!claim] quad\n> experiment:: flash-attention/linear-memory\n"
                            "> params:: ns=[60000], impls=[\"naive\"]\n\n> [!claim] deep\n"
                            "> experiment:: transformer/copy-task\n> params:: d_model=512, n_layers=20000\n")
    attack("claim params ns=[60000] naive; d_model=512, n_layers=20000 (this 23.5 GiB machine)",
           "refused before starting", """
        v = pathlib.Path(sys.argv[1]); a = cli("--vault", v, "run", "quad"); b = cli("--vault", v, "run", "deep")
        ok = all(x.returncode == 1 and "refused before starting" in x.stderr for x in (a, b))
        result = ("" if ok else "FAILED ") + a.stderr.strip()[:110]
    """, str(v))
    attack("`run --nproc 100000`, `run --seed 1e26`, `--vault /nonexistent`", "usage errors, exit 2", """
        v = pathlib.Path(sys.argv[1]); codes = [cli("--vault", v, "run", "quad", "--nproc", "100000").returncode,
            cli("--vault", v, "run", "quad", "--seed", "9" * 26).returncode, cli("--vault", "/nonexistent", "status").returncode]
        result = ("" if codes == [2, 2, 2] else "FAILED ") + f"exit {codes}"
    """, str(v))

    v = work / "nested"
    v.mkdir()
    (v / "N.md").write_text("# N\n\nSee [[Other]].\n\n> [!claim] first\n> params:: x=" + "[" * 500 + "]" * 500 +
                            "\n\n> [!claim] second\n> params:: n=2\n")
    (v / "Other.md").write_text("# Other\n")
    attack("`params::` nested 500 deep", "an error on its line; other claims and links kept", """
        v = pathlib.Path(sys.argv[1]); c = cli("--vault", v, "claims", "-f", "tsv"); l = cli("--vault", v, "links", "N")
        k = cli("--vault", v, "check")
        ok = "second" in c.stdout and "Other.md" in l.stdout and "nests lists" in k.stdout and "Recursion" not in k.stdout
        result = ("" if ok else "FAILED ") + [ln for ln in k.stdout.splitlines() if "nests" in ln][0][:90]
    """, str(v))

    v = work / "laughs"
    (v / ".paperkb").mkdir(parents=True)
    (v / "P.md").write_text("---\ntags: [paper]\n---\n# P\n")
    (v / ".paperkb" / "papers.yaml").write_text("a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{n}: &{n} [{', '.join(['*' + p] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi")) + "tags: *i\n")
    attack("`.paperkb/papers.yaml` billion laughs, then `export summary`", "one line, no blow-up", """
        v = pathlib.Path(sys.argv[1]); r = cli("--vault", v, "export", "summary")
        ok = r.returncode == 1 and "papers.yaml" in r.stderr and "Traceback" not in r.stderr
        result = ("" if ok else "FAILED ") + r.stderr.strip()[:100]
    """, str(v))

    fifo = work / "lib-fifo.bib"
    os.mkfifo(fifo)
    attack("`import bibtex /dev/zero` and a FIFO", "refused at once", """
        v = pathlib.Path(sys.argv[1]); a = cli("--vault", v, "import", "bibtex", "/dev/zero")
        b = cli("--vault", v, "import", "bibtex", sys.argv[2])
        ok = all(x.returncode == 1 and "not a regular file" in x.stderr for x in (a, b))
        result = ("" if ok else "FAILED ") + a.stderr.strip()[:90]
    """, str(v), str(fifo))

    ck = work / "ckpt"
    attack("`chat` on a config.json with num_hidden_layers 200000 (and 1e9 positions)", "one line before building", """
        import torch, json
        from repro.llama.model import ModelArgs, Transformer
        from repro.llama.weights import save_hf
        d = save_hf(Transformer(ModelArgs(dim=16, n_layers=1, n_heads=2, vocab_size=40, max_seq_len=32, multiple_of=16)), sys.argv[1])
        out = []
        for change in ({"num_hidden_layers": 200000}, {"max_position_embeddings": 10**9}):
            cfg = json.loads((d / "config.json").read_text()); cfg.update(change); (d / "config.json").write_text(json.dumps(cfg))
            r = cli("chat", d, stdin="hi\\n"); out.append((r.returncode, r.stderr.strip()))
        ok = all(code == 1 and "config.json" in err and "Traceback" not in err for code, err in out)
        result = ("" if ok else "FAILED ") + out[0][1][-70:]
    """, str(ck))

    v = work / "tour"
    shutil.copytree(ROOT / "notes", v, ignore=shutil.ignore_patterns(".paperkb"))
    attack("the README tour inside the vault: summary into it, exports copied into it", "no new names, papers or warnings", """
        import shutil
        v = pathlib.Path(sys.argv[1])
        before = (cli("--vault", v, "check").stdout.count("\\n"), cli("--vault", v, "query", "LIST FROM #paper", "-f", "tsv").stdout)
        cli("--vault", v, "export", "summary", "-o", v / "reading-summary.md")
        cli("--vault", v, "export", "markdown", v.parent / "plain"); shutil.copytree(v.parent / "plain", v / "plain")
        cli("--vault", v, "export", "markdown", v.parent / "bare", "--no-frontmatter"); shutil.copytree(v.parent / "bare", v / "bare")
        after = (cli("--vault", v, "check").stdout.count("\\n"), cli("--vault", v, "query", "LIST FROM #paper", "-f", "tsv").stdout)
        show = cli("--vault", v, "show", "vaswaniAttentionAllYou2017").returncode
        result = ("" if before == after and show == 0 else "FAILED ") + f"problems {before[0]} -> {after[0]}; papers unchanged: {before[1] == after[1]}; show exit {show}"
    """, str(v))
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
    ap.add_argument("--issue", type=int, choices=(12, 23), default=12, help="whose attacks to replay")
    args = ap.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    with open("/proc/loadavg") as fh:
        load0 = fh.read().split()[0]
    rows = attacks_23(args.work) if args.issue == 23 else attacks(args.work, args.big_mb)
    with open("/proc/loadavg") as fh:
        load1 = fh.read().split()[0]
    print(f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average {load0} at the start, "
          f"{load1} at the end; Python {sys.version.split()[0]}\n")
    print(table(rows))
    return 0 if all(r.get("held") for _, _, r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
